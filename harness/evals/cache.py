"""On-disk cache of eval results, so re-running unchanged items sends no request.

An entry is keyed by the dataset item, the model, the request parameters, the repeat and the
target: the stack settings with a digest of the ``target_service`` package's files (and, for
the docker backend, the gateway image id), or the external URL. It stores the response and every score
computed for it, by scorer fingerprint (type, version and options). A changed scorer is
scored again from the stored response; a changed item, model or parameter sends a new request.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path(".slogate-cache") / "evals"


def package_digest(directory: Path) -> str:
    """Return a SHA-256 of every file under a package ``directory``, by relative path and content.

    Byte-code (``__pycache__`` folders, ``.pyc`` files) is skipped because it follows the sources.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(*parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EvalCache:
    """Entries as JSON files under ``directory``, two hex digits of the key per subfolder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # a missing or torn entry is a miss
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Write ``entry`` atomically, so a concurrent reader sees the old entry or the new one."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(entry, file, ensure_ascii=False)
        os.replace(temporary, path)
