"""Write a run's files: summary.json, summary.md, per-request CSV, and the ``latest`` link."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from harness.metrics.records import CSV_COLUMNS, RequestRecord
from harness.reports.schema import RunSummary
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


def write_summary(summary: RunSummary, run_dir: Path) -> tuple[Path, Path]:
    """Write summary.json and summary.md into ``run_dir``; return both paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path = run_dir / "summary.json"
    markdown_path = run_dir / "summary.md"
    json_path.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(summary), encoding="utf-8")
    return json_path, markdown_path


def update_latest_link(run_dir: Path) -> Path:
    """Point ``<reports>/latest`` at ``run_dir`` with a relative symlink, replaced atomically."""
    link = run_dir.parent / "latest"
    temporary = run_dir.parent / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(temporary, link)
    return link
