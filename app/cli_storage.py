"""`flask storage ...`: where files are kept, and moving old files into the file storage.

- ``flask storage info``: the backend in use (a local folder or an S3 bucket);
- ``flask storage migrate``: move photos and attachments kept in the database,
  and uploads and job files kept in the old instance folders, into the file
  storage, a committed batch at a time (safe to stop and run again);
- ``flask storage migrate --into-database``: move stored photos and
  attachments back into the database, before downgrading below migration 0010.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.services import storage, storage_migration
from app.services.errors import ServiceError

group = AppGroup("storage", help="The file storage: photos, attachments, import uploads, job files.")


@group.command("info")
def info_command() -> None:
    """Say where files are kept."""
    click.echo(f"Files are kept in the {storage.backend().describe()}.")


def _run(label: str, step, batch: int) -> None:
    moved = missing = 0
    while True:
        try:
            done = step(batch)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            raise click.ClickException(f"{label}: {exc.message}") from None
        for path in done.leftovers:  # copied and committed: the old file is no longer needed
            path.unlink(missing_ok=True)
        moved, missing = moved + done.moved, missing + done.missing
        if not done.moved and not done.missing:
            break
        if step is storage_migration.blobs_to_database and not done.moved:
            break  # only missing objects are left
    note = f" ({missing} whose file was already gone)" if missing else ""
    click.echo(f"{label}: {moved} moved{note}.")


@group.command("migrate")
@click.option("--into-database", is_flag=True,
              help="Move stored photos and attachments back into the database (before a downgrade).")
@click.option("--batch", default=50, show_default=True, help="Files per committed batch.")
def migrate_command(into_database: bool, batch: int) -> None:
    """Move files kept the old way into the file storage (or, with --into-database, back)."""
    click.echo(f"File storage: {storage.backend().describe()}.")
    if into_database:
        _run("photos and attachments into the database", storage_migration.blobs_to_database, batch)
        return
    for label, step in storage_migration.STEPS.items():
        _run(label, step, batch)


def register(app: Flask) -> None:
    app.cli.add_command(group)
