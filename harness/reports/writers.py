"""Write a run's files: summary.json (checked against its JSON Schema), summary.md, per-request CSV
and Parquet, and the ``latest`` link."""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import jsonschema

from harness.metrics.records import CSV_COLUMNS, RequestRecord
from harness.reports.schema import SUMMARY_SCHEMA_FILE, RunSummary
from harness.reports.tables import render_markdown

REQUEST_COLUMNS = CSV_COLUMNS


class RequestsCSV:
    """Writes one row per request as each one finishes, so a long run keeps no records in memory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=REQUEST_COLUMNS)
        self._writer.writeheader()

    def write(self, record: RequestRecord) -> None:
        self._writer.writerow(record.to_dict())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RequestsCSV:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def write_requests_csv(records: Sequence[RequestRecord], path: Path) -> None:
    """Write one row per request; times are seconds from the run's clock origin."""
    with RequestsCSV(path) as writer:
        for record in records:
            writer.write(record)


@functools.cache
def _summary_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SUMMARY_SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def validate_summary(data: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of ``data`` that breaks the shipped summary schema."""
    error = jsonschema.exceptions.best_match(_summary_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ValueError(
            f"summary.json does not match {SUMMARY_SCHEMA_FILE.name} at {where}: {error.message}; "
            "this is a slogate bug, or the shipped schema is out of date"
        )


def write_summary(summary: RunSummary, run_dir: Path) -> tuple[Path, Path]:
    """Write summary.json (after checking it against its JSON Schema) and summary.md into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path = run_dir / "summary.json"
    markdown_path = run_dir / "summary.md"
    text = summary.model_dump_json(indent=2)
    validate_summary(json.loads(text))
    json_path.write_text(text + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(summary), encoding="utf-8")
    return json_path, markdown_path


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_requests_parquet(csv_path: Path) -> Path | None:
    """Write the per-request CSV again as Parquet beside it; None when pyarrow is not installed."""
    if not parquet_available():
        return None
    from pyarrow import csv as arrow_csv
    from pyarrow import parquet

    # Every column but the free-text ones is typed by inference; these stay text even when empty.
    text_columns = ("error", "error_class", "token_source", "cache", "upstream", "tenant", "headers")
    options = arrow_csv.ConvertOptions(column_types=dict.fromkeys(text_columns, "string"))
    options.column_types["chunk_offsets_ms"] = "string"
    table = arrow_csv.read_csv(csv_path, convert_options=options)
    path = csv_path.with_suffix(".parquet")
    parquet.write_table(table, path)
    return path


def update_latest_link(run_dir: Path) -> Path:
    """Point ``<reports>/latest`` at ``run_dir`` with a relative symlink, replaced atomically."""
    link = run_dir.parent / "latest"
    temporary = run_dir.parent / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(temporary, link)
    return link
