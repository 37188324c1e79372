"""The container health check: exit 0 when the service's health URL returns 200, else 1.

The URL comes from SLOGATE_HEALTHCHECK_URL, because the same image runs the gateway (``/healthz``),
the mock upstream LLM (``/healthz``) and the fault proxy (``/version``) on whatever port they are given.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

HEALTHCHECK_URL_VARIABLE = "SLOGATE_HEALTHCHECK_URL"
DEFAULT_HEALTHCHECK_URL = "http://127.0.0.1:8080/healthz"
TIMEOUT_S = 2.0


def check(url: str, timeout_s: float = TIMEOUT_S) -> str | None:
    """Request ``url``; return None when it returned 200, else the reason it is unhealthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} returned HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} failed: {exc}"
    return None if status == 200 else f"{url} returned HTTP {status}"


def main() -> int:
    url = os.environ.get(HEALTHCHECK_URL_VARIABLE, DEFAULT_HEALTHCHECK_URL)
    problem = check(url)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
