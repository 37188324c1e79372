"""Read a run's per-request CSV back into records, so phases, baselines and reports use the raw data."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.metrics.records import CHUNK_OFFSETS_COLUMN, ErrorClass, RequestRecord, TokenSource

_FLOATS = ("intended_start", "sent", "first_byte", "first_token", "end")
_INTEGERS = ("status", "prompt_tokens", "completion_tokens")
_BOOLEANS = ("stream", "warmup", "queued")


def read_requests_csv(path: Path) -> Iterator[RequestRecord]:
    """Yield one record per row of a requests CSV that slogate wrote, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield record_from_row(row)


def record_from_row(row: dict[str, str]) -> RequestRecord:
    """Rebuild a record from its CSV row; an empty cell is None, as the writer left it."""
    values: dict[str, Any] = {
        "index": int(row["index"]),
        "kind": int(row["kind"]),
        "replica": int(row["replica"]),
    }
    for name in _FLOATS:
        values[name] = _optional(row.get(name), float)
    for name in _INTEGERS:
        values[name] = _optional(row.get(name), int)
    for name in _BOOLEANS:
        values[name] = row.get(name) == "True"
    values["content_chunks"] = int(row.get("content_chunks") or 0)
    values["error_class"] = _optional(row.get("error_class"), ErrorClass)
    values["token_source"] = _optional(row.get("token_source"), TokenSource)
    for name in ("error", "cache", "upstream", "tenant"):
        values[name] = row.get(name) or None
    values["headers"] = json.loads(row["headers"]) if row.get("headers") else None
    record = RequestRecord(**values)
    record.chunk_times = _chunk_times(row.get(CHUNK_OFFSETS_COLUMN), record.first_token)
    return record


def _optional(text: str | None, parse: Any) -> Any:
    return parse(text) if text not in (None, "") else None


def _chunk_times(offsets_ms: str | None, first_token: float | None) -> list[float]:
    if not offsets_ms or first_token is None:
        return []
    return [first_token + float(offset) / 1000 for offset in offsets_ms.split()]
