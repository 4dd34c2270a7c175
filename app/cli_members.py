"""`flask members import FILE` and `flask members export`: the registry in and out from a shell.

Both call the same services as the console (``services.imports`` and
``services.exports``). Without ``--user`` they act as the system (everywhere);
with ``--user EMAIL`` that staff user's scope applies, exactly as in the console.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import MEMBER_STATUSES, User
from app.services import exports
from app.services import imports as import_service
from app.services import member_search
from app.services.errors import AccessDenied, ServiceError

members = AppGroup("members", help="Import and export members.")


def _user(email: str | None) -> User | None:
    if not email:
        return None
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        raise click.ClickException(f"No active user {email}.")
    return user


def _unit_id(code: str | None) -> int | None:
    if not code:
        return None
    unit_id, problem = import_service.UnitResolver().resolve(code)
    if unit_id is None:
        message = "matches several units; give its path" if problem == "ambiguous" else "is not a known unit"
        raise click.BadParameter(f"'{code}' {message}.", param_hint="--unit")
    return unit_id


class _Bars:
    """A progress bar per phase (all-or-nothing checks every row, then writes), on stderr."""

    LABELS = {"check": "Checking every row", "preview": "Checking", "write": "Importing"}

    def __init__(self) -> None:
        self.phase: str | None = None
        self.bar = None

    def update(self, progress: import_service.Progress) -> None:
        if progress.phase != self.phase:
            self.close()
            self.phase = progress.phase
            self.bar = click.progressbar(length=progress.total or 0, label=self.LABELS[progress.phase],
                                         file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        if self.bar is not None and progress.total:
            self.bar.update(progress.done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@members.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--unit", "unit_code", help="Ward (code or name path) for rows that name none.")
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--all-or-nothing", is_flag=True, help="Write nothing unless every row is valid.")
@click.option("--user", "email", help="Import as this staff user (their wards only). Default: the system.")
@click.option("--date-order", type=click.Choice(import_service.DATE_ORDERS), default=None,
              help="How d/m/y dates are written (default: MUSTER_IMPORT_DATE_ORDER, DMY).")
@click.option("--default-status", type=click.Choice(["pending", "active"]), default="pending", show_default=True,
              help="Status of new members whose row gives none.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Rows written per transaction (default: MUSTER_IMPORT_BATCH_SIZE, 1000).")
@click.option("--report", type=click.Path(dir_okay=False), help="Also write the bad rows, with reasons, to this CSV.")
def import_command(file: str, unit_code: str | None, dry_run: bool, all_or_nothing: bool, email: str | None,
                   date_order: str | None, default_status: str, batch_size: int | None, report: str | None) -> None:
    """Import members from a CSV or XLSX FILE.

    Valid rows are imported and every bad row is reported with its line and
    the reason. Members are matched by national ID or membership number, so
    running the same file again updates them instead of adding them twice.
    Exits non-zero only when the file cannot be read at all.
    """
    actor = _user(email)
    try:
        info = import_service.inspect_file(file)
    except (ServiceError, AccessDenied) as exc:
        raise click.ClickException(exc.message) from None
    mapping = import_service.guess_mapping(info.headers)
    click.echo(f"{os.path.basename(file)}: {info.description}; header on line {info.header_line}.")
    shown = [f"{h} → {import_service.FIELD_LABELS[k]}" for h, k in zip(info.headers, mapping) if k]
    ignored = [h for h, k in zip(info.headers, mapping) if not k]
    click.echo("Columns: " + "; ".join(shown) + (f" (ignored: {', '.join(ignored)})" if ignored else ""))
    settings = import_service.ImportSettings(
        mapping=mapping,
        default_unit_id=_unit_id(unit_code),
        date_order=date_order or current_app.config.get("IMPORT_DATE_ORDER", "DMY"),
        default_status=default_status,
        mode="all" if all_or_nothing else "valid",
        batch_size=batch_size or int(current_app.config.get("IMPORT_BATCH_SIZE", 1000)),
    )
    report_path = report or tempfile.mkstemp(suffix=".csv", prefix="muster-import-")[1]
    bars = _Bars()

    def on_batch(progress: import_service.Progress) -> None:
        # One transaction per batch: an interruption leaves whole batches only (a check pass only read).
        db.session.commit()
        bars.update(progress)

    try:
        total = import_service.count_rows(file, info)
        db.session.commit()  # each batch starts a transaction of its own
        result = import_service.import_file(actor, file, info, settings, filename=os.path.basename(file),
                                            dry_run=dry_run, on_batch=on_batch, total=total,
                                            report_path=report_path)
        db.session.commit()
    except (ServiceError, AccessDenied) as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    finally:
        bars.close()
    try:
        with open(report_path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                click.echo(f"line {row[0]}: {row[1]}")
    finally:
        if not report:
            os.unlink(report_path)
    counts = result.summary()
    verb = "Would import" if dry_run else "Imported"
    if result.refused:
        click.echo(f"Nothing imported (all or nothing): {result.bad:,} of {result.rows:,} rows have problems.")
    else:
        if dry_run and settings.mode == "all" and result.bad:
            click.echo("All or nothing: with these problems nothing would be imported.")
        click.echo(f"{verb}: {counts['new']:,} new, {counts['updated']:,} updated, {counts['unchanged']:,} unchanged; "
                   f"{counts['duplicates']:,} duplicates and {counts['errors']:,} errors not imported "
                   f"({result.rows:,} rows).")
    if report and result.bad:
        click.echo(f"Bad rows written to {report}.")


@members.command("export")
@click.option("--unit", "unit_code", help="Only members of this unit (code or name path) and the units below it.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(MEMBER_STATUSES),
              help="Only members with this status (repeat for several).")
@click.option("--search", default="", help="The member list's search: surname prefix, phone, number, ID or email.")
@click.option("--format", "fmt", type=click.Choice(sorted(exports.FORMATS)), default="csv", show_default=True)
@click.option("--columns", default="", help=f"Comma-separated, from: {', '.join(exports.EXPORT_COLUMNS)}.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
@click.option("--user", "email", help="Export as this staff user (their scope applies). Default: the system.")
def export_command(unit_code: str | None, statuses: tuple[str, ...], search: str, fmt: str, columns: str,
                   output: str | None, email: str | None) -> None:
    """Export live members as CSV (default, to standard output) or XLSX.

    Cells starting with =, +, -, @ are written with a leading ' in CSV so
    spreadsheets never run them (phone numbers show as '+260...).
    """
    actor = _user(email)
    if fmt == "xlsx" and not output and sys.stdout.isatty():
        raise click.UsageError("Give --output FILE for an XLSX export (it is binary).")
    unit_id = _unit_id(unit_code)
    try:
        export = exports.export_members(
            actor, member_search.list_clauses(q=search, status=statuses, unit_id=unit_id), fmt=fmt,
            columns=[columns], filters={"unit": unit_code, "status": list(statuses), "search": search},
            unit_id=unit_id, source="cli",
        )
    except ServiceError as exc:
        option = {"columns": "--columns", "q": "--search"}.get(exc.field or "")
        if option:
            raise click.BadParameter(exc.message, param_hint=option) from None
        raise click.ClickException(exc.message) from None
    except AccessDenied as exc:  # --user without members.export
        raise click.ClickException(exc.message) from None
    out = open(output, "wb") if output else sys.stdout.buffer
    try:
        for piece in export.body:
            out.write(piece)
    finally:
        if output:
            out.close()
        else:
            out.flush()
    if output:
        click.echo(f"Exported {export.rows:,} members to {output}.", err=True)


def register(app: Flask) -> None:
    app.cli.add_command(members)
