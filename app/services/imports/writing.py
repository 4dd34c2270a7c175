"""Running an import: passes over the file, batch by batch, written through the member service.

Writing goes through ``services.members_bulk`` (``create_members`` and
``update_members``), the bulk twins of the console's and the API's member
functions, so every rule follows an imported row: the status lifecycle with
its reason in ``member_status_changes``, the card following its member
(expelled: revoked), duplicates, scope and the audit log. Membership numbers
are allocated in blocks and members go in with executemany inserts.

The caller commits after every batch (``on_batch``), so a crash or a killed
process leaves whole batches only; the committed position is saved with the
batch, so a resumed job continues where it stopped, and any re-run of the
same file matches the members it already created instead of creating them twice.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sqlalchemy.exc import IntegrityError

from app.database import take_write_lock
from app.extensions import db
from app.services import members_bulk
from app.services.errors import ServiceError
from app.services.imports.reading import cell_text, data_rows
from app.services.imports.validation import KINDS, FileRow, RowChecker

BAD_ROWS_KEPT = 100  # bad rows kept in a result for display; the report file has them all


@dataclass
class Progress:
    """Where an import stands; handed to ``on_batch`` after every batch."""

    phase: str  # "check" (all-or-nothing: validating everything first) or "write" (or "preview")
    done: int = 0
    total: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    batch_size: int = 1000

    @property
    def bad(self) -> int:
        return self.counts["duplicate"] + self.counts["error"]

    def resume_state(self) -> dict[str, Any]:
        return {"phase": self.phase, "rows_done": self.done, "batch_size": self.batch_size,
                "counts": dict(self.counts)}

    @property
    def message(self) -> str:
        if self.phase == "check":
            return "Checking every row before writing anything (all-or-nothing)…"
        if self.phase == "preview":
            return "Checking the rows…"
        return (f"{self.counts['new']:,} new, {self.counts['update']:,} updated, "
                f"{self.counts['unchanged']:,} unchanged so far")


@dataclass
class ImportResult:
    counts: dict[str, int]
    rows: int
    bad_rows: list[tuple[int, str]]
    written: bool
    refused: bool = False
    report_path: str | None = None
    unit_id: int | None = None

    @property
    def bad(self) -> int:
        return self.counts["duplicate"] + self.counts["error"]

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "new": self.counts["new"], "updated": self.counts["update"],
                "unchanged": self.counts["unchanged"], "duplicates": self.counts["duplicate"],
                "errors": self.counts["error"]}


class _ReportWriter:
    """The error report: the bad rows as they were, with their line and the reason first."""

    def __init__(self, path, headers: list[str]) -> None:
        self.fh = open(path, "w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.fh)
        self.width = len(headers)
        self.writer.writerow(["Line", "Reason", *headers])

    def write(self, line: int, reason: str, cells: list[Any]) -> None:
        from app.services.exports import neutralise

        values = [neutralise(cell_text(c)) for c in cells[: self.width]]
        self.writer.writerow([line, neutralise(reason), *values])

    def close(self) -> None:
        self.fh.close()


class Importer(RowChecker):
    """Validates and writes the rows of one file for one actor.

    ``run(write=False)`` is the preview (nothing changes); ``run(write=True)``
    writes batch by batch and calls ``on_batch(progress)`` after each one,
    where the caller commits. ``resume`` (a ``Progress.resume_state()``)
    continues an interrupted run: batches already committed are re-read and
    checked (for duplicates within the file and the error report) but not
    written or counted again.
    """

    def run(self, *, write: bool, on_batch: Callable[[Progress], None] | None = None,
            resume: dict[str, Any] | None = None, total: int | None = None) -> ImportResult:
        """Validate every row; with ``write``, also write (mode "all": only if all rows are valid)."""
        resume = resume or {}
        if write and self.settings.mode == "all" and resume.get("phase") != "write":
            check = self._pass(write=False, phase="check", on_batch=on_batch, resume=None, total=total)
            if check.bad:
                check.refused = True
                check.written = False
                return check
            total = check.rows
            resume = {}
        return self._pass(write=write, phase="write" if write else "preview", on_batch=on_batch,
                          resume=resume or None, total=total)

    def _pass(self, *, write: bool, phase: str, on_batch, resume, total) -> ImportResult:
        self._seen.clear()
        self._claimed.clear()
        self.touched_units.clear()
        batch_size = int((resume or {}).get("batch_size") or self.settings.batch_size)
        skip_until = int((resume or {}).get("rows_done") or 0)
        progress = Progress(phase=phase, total=total, batch_size=batch_size)
        if resume:
            progress.counts.update(resume.get("counts") or {})
        bad_rows: list[tuple[int, str]] = []
        report = _ReportWriter(self.report_path, self.info.headers) if self.report_path else None
        rows_seen = 0
        try:
            batch: list[tuple[int, list[Any]]] = []
            for item in data_rows(self.path, self.info):
                batch.append(item)
                if len(batch) >= batch_size:
                    rows_seen = self._batch(batch, rows_seen, skip_until, write, progress, bad_rows, report, on_batch)
                    batch = []
            if batch:
                rows_seen = self._batch(batch, rows_seen, skip_until, write, progress, bad_rows, report, on_batch)
        finally:
            if report:
                report.close()
        progress.total = rows_seen
        return ImportResult(counts=dict(progress.counts), rows=rows_seen, bad_rows=bad_rows, written=write,
                            report_path=str(self.report_path) if self.report_path else None,
                            unit_id=self._audit_unit())

    def _batch(self, items, rows_seen, skip_until, write, progress, bad_rows, report, on_batch) -> int:
        rows_seen += len(items)
        replay = rows_seen <= skip_until  # committed by an earlier, interrupted run
        rows = [self._normalise(line, cells) for line, cells in items]
        if write and not replay:
            take_write_lock()
            # Written in a savepoint: if another writer took a national ID or phone in the
            # meantime (the member service or a unique constraint refuses the batch), the
            # batch is checked again, which now sees that change, and retried once.
            for attempt in (1, 2):
                self._added = []
                self._classify(rows)
                savepoint = db.session.begin_nested()
                try:
                    self._write(rows)
                    savepoint.commit()
                    break
                except (IntegrityError, ServiceError) as exc:
                    savepoint.rollback()
                    if attempt == 2:
                        raise self._clash(rows, exc) from None
                    self._forget_batch()
                    rows = [self._normalise(line, cells) for line, cells in items]
        else:
            self._classify(rows)
        for row in rows:
            if row.kind in ("duplicate", "error"):
                reason = " ".join(row.problems)
                if len(bad_rows) < BAD_ROWS_KEPT:
                    bad_rows.append((row.line, reason))
                if report:
                    report.write(row.line, reason, row.cells)
            elif row.unit_id is not None and not replay:
                self.touched_units.add(row.unit_id)
            if not replay:
                progress.counts[row.kind] += 1
        progress.done = max(progress.done, rows_seen)
        if on_batch is not None and (not replay or rows_seen == skip_until):
            on_batch(progress)
        return rows_seen

    def _audit_unit(self) -> int | None:
        unit_id = self.units.common_ancestor(self.touched_units) if self.touched_units else None
        return unit_id if unit_id is not None else self.settings.default_unit_id

    def _write(self, rows: list[FileRow]) -> None:
        """The batch's new and changed members, through the member service's bulk functions."""
        new = [r for r in rows if r.kind == "new"]
        with _lines_of(new):
            members_bulk.create_members(self.actor, [
                {**r.values, "unit_id": r.unit_id, "status": r.status or self.settings.default_status,
                 "membership_number": r.number} for r in new
            ], reason=self.status_reason)
        updates = [r for r in rows if r.kind == "update"]
        with _lines_of(updates):
            members_bulk.update_members(self.actor, {
                r.member_id: {key: after for key, (_before, after) in r.changes.items()} for r in updates
            }, reason=self.status_reason, source=self.filename)

    @staticmethod
    def _clash(rows: list[FileRow], exc: Exception) -> ServiceError:
        """The error stopping an import whose batch was refused twice (by changes made while it ran)."""
        line = exc.details.get("line") if isinstance(exc, ServiceError) and isinstance(exc.details, dict) else None
        if line is not None:
            return ServiceError(f"Line {line}: {exc.message} The rows before line {rows[0].line} are imported; "
                                "run the import again to finish.")
        return ServiceError(f"Lines {rows[0].line}-{rows[-1].line} clash with changes made while the import ran. "
                            "Rows before them are imported; run the import again to finish.")


@contextmanager
def _lines_of(rows: list[FileRow]) -> Iterator[None]:
    """Name the file line of the row a member service refused (its ``details["row"]`` indexes ``rows``)."""
    try:
        yield
    except ServiceError as exc:
        index = exc.details.get("row") if isinstance(exc.details, dict) else None
        if isinstance(index, int) and 0 <= index < len(rows):
            exc.details = {**exc.details, "line": rows[index].line}
        raise
