"""Scrape each gateway replica's Prometheus /metrics at the end of a scenario and summarise key counters.

The text is stored as scraped (``metrics/<scenario>/gateway-N.prom``) so nothing is lost; the
report shows a few counters summed over their other labels. A replica restarted by a fault
starts its counters from zero, so its scrape covers only the time since its restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT_S = 5.0

KEY_COUNTERS: dict[str, str] = {
    "slogate_requests": "status",
    "slogate_cache_results": "result",
    "slogate_rate_limit_rejections": "limit",
    "slogate_upstream_errors": "error_class",
    "slogate_redis_errors": "reason",
    "slogate_tokens": "kind",
}
"""Counter families the report shows, each by the label it is split on (names without _total)."""


def scrape_metrics(urls: Sequence[str], folder: Path) -> dict[str, Path]:
    """Fetch every URL and store its text as ``gateway-N.prom``; a failed scrape stores the error instead.

    Returns the stored file of each replica by its name, ``gateway-N``.
    """
    files: dict[str, Path] = {}
    if not urls:
        return files
    folder.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=SCRAPE_TIMEOUT_S) as client:
        for replica, url in enumerate(urls):
            name = f"gateway-{replica}"
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                path = folder / f"{name}.error.txt"
                path.write_text(f"scraping {url} failed: {type(exc).__name__}: {exc}\n", encoding="utf-8")
            else:
                path = folder / f"{name}.prom"
                path.write_text(response.text, encoding="utf-8")
            files[name] = path
    return files


def key_counters(text: str) -> dict[str, dict[str, float]]:
    """Sum the key counters of a scrape by their split label, such as requests by status."""
    counters: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        label = KEY_COUNTERS.get(family.name)
        if label is None or family.type != "counter":
            continue
        split = counters.setdefault(family.name, {})
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = sample.labels.get(label, "")
            split[key] = split.get(key, 0.0) + sample.value
    return counters
