"""`flask members import` and `flask members export`, including an import killed mid-way and run again."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.models import AuditEntry, Member
from tests.conftest import _database_url

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def test_import_reports_each_bad_row_and_imports_the_rest(runner, ctx, tree):
    result = runner.invoke(args=["members", "import", str(DATA / "members_bad_rows.csv")])
    assert result.exit_code == 0, result.output
    assert "Columns: Surname → Last name (surname); First Name → First name; ID No → National ID" in result.output
    assert "line 5: First Name: First name is required." in result.output
    assert "line 8: Same national ID as line 2." in result.output
    assert "Imported: 5 new, 0 updated, 0 unchanged; 1 duplicates and 5 errors not imported (11 rows)." in result.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 5
    assert db.session.scalar(select(AuditEntry.changes).where(AuditEntry.action == "members.import"))["new"] == 5


def test_dry_run_and_all_or_nothing_write_nothing(runner, ctx, tree):
    dry = runner.invoke(args=["members", "import", str(DATA / "members_utf8.csv"), "--dry-run"])
    assert dry.exit_code == 0 and "Would import: 10 new" in dry.output
    refused = runner.invoke(args=["members", "import", str(DATA / "members_bad_rows.csv"), "--all-or-nothing"])
    assert refused.exit_code == 0
    assert "Nothing imported (all or nothing): 6 of 11 rows have problems." in refused.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


@pytest.mark.parametrize("name,message", [("empty.csv", "The file is empty."),
                                          ("binary.csv", "not a CSV or Excel file"),
                                          ("no_header.csv", "No recognisable header row")])
def test_unreadable_files_exit_non_zero(runner, ctx, name, message):
    result = runner.invoke(args=["members", "import", str(DATA / name)])
    assert result.exit_code == 1 and message in result.output


def test_import_as_a_coordinator_and_default_ward(runner, ctx, tree, staff, tmp_path):
    result = runner.invoke(args=["members", "import", str(DATA / "members_other_wards.csv"), "--user", "coord@test.org"])
    assert result.exit_code == 0
    assert "line 3: Ward: “W4” is not a ward you can import into." in result.output
    path = tmp_path / "no_ward.csv"
    path.write_text("Surname,First name\nKabwe,Moses\n")
    result = runner.invoke(args=["members", "import", str(path), "--unit", "Northern / Kasama / Lukashya / W2"])
    assert result.exit_code == 0 and "1 new" in result.output
    assert db.session.scalar(select(Member.unit_id).where(Member.last_name == "Kabwe")) == tree["w2"].id
    bad = runner.invoke(args=["members", "import", str(path), "--unit", "NOWHERE"])
    assert bad.exit_code == 2 and "is not a known unit" in bad.output


def test_export_to_stdout_and_xlsx(runner, ctx, tree, tmp_path):
    runner.invoke(args=["members", "import", str(DATA / "members_utf8.csv")])
    result = runner.invoke(args=["members", "export", "--unit", "W2", "--status", "pending",
                                 "--columns", "last_name,phone,unit_code"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output.lstrip("\ufeff"))))
    assert rows[0] == ["Last name", "Phone", "Ward code"]
    assert sorted(r[0] for r in rows[1:]) == ["Chanda", "Ngoma", "Phiri", "Tembo"]
    assert all(r[1].startswith("'+260") and r[2] == "W2" for r in rows[1:])
    out = tmp_path / "all.xlsx"
    result = runner.invoke(args=["members", "export", "--format", "xlsx", "-o", str(out)])
    assert result.exit_code == 0 and "Exported 10 members" in result.output
    from openpyxl import load_workbook

    assert load_workbook(out).active.max_row == 11
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.export")
                              .order_by(AuditEntry.id))
    assert entry.changes["filter"] == {"unit": "W2", "status": ["pending"], "search": ""}


def test_export_as_a_user_without_the_export_permission_is_refused(runner, ctx, tree, staff, make_member):
    """Before the one export pipeline the CLI wrote an empty file (and an audit entry) for such a user."""
    make_member(tree["w1"])
    result = runner.invoke(args=["members", "export", "--user", "member@test.org"])
    assert result.exit_code == 1 and "You do not have permission" in result.output
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "members.export")) == 0
    result = runner.invoke(args=["members", "export", "--columns", "password"])
    assert result.exit_code == 2 and "Unknown column 'password'" in result.output


# --- a killed import ----------------------------------------------------------------------


def _scratch_database(tmp_path: Path):
    """A database of its own that a subprocess and this test share (SQLite file, or a PostgreSQL database)."""
    base = _database_url(tmp_path)
    if base.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        url = make_url(base)
        name = f"{url.database}_kill"
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        return url.set(database=name).render_as_string(hide_password=False), drop
    return f"sqlite:///{tmp_path / 'kill.db'}", lambda: None


def _flask(env, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_a_killed_import_leaves_whole_batches_and_running_it_again_completes_it(tmp_path):
    url, drop = _scratch_database(tmp_path)
    env = {**os.environ, "FLASK_APP": "wsgi.py", "DATABASE_URL": url, "MUSTER_INSTANCE_DIR": str(tmp_path / "instance"),
           "SECRET_KEY": "kill-test"}
    rows, batch = 20_000, 200
    path = tmp_path / "big.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Surname", "First name", "ID No", "Cell", "Ward"])
        for i in range(rows):
            writer.writerow([f"Person{i}", "Test", f"{800000 + i}/11/1", f"0977{800000 + i}", "W1" if i % 2 else "W2"])
    engine = create_engine(url, poolclass=NullPool)
    try:
        assert _flask(env, "db", "upgrade", "heads").returncode == 0
        seed = ("from app.services import geo\nfrom app.extensions import db\n"
                "p = geo.create_unit(None, 'Northern', 'P1'); d = geo.create_unit(None, 'Kasama', 'D1', p)\n"
                "c = geo.create_unit(None, 'Lukashya', 'C1', d)\n"
                "geo.create_unit(None, 'Ward 1', 'W1', c); geo.create_unit(None, 'Ward 2', 'W2', c)\n"
                "db.session.commit()\n")
        assert _flask(env, "shell", input=seed).returncode == 0

        def counts() -> tuple[int, int]:
            with engine.connect() as conn:
                return (conn.scalar(text("SELECT count(*) FROM members")),
                        conn.scalar(text("SELECT count(*) FROM member_status_changes")))

        process = subprocess.Popen([sys.executable, "-m", "flask", "members", "import", str(path),
                                    "--batch-size", str(batch)], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if counts()[0] >= 3 * batch:
                    break
                time.sleep(0.01)
            assert process.poll() is None, "the import finished before it could be interrupted"
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        members, changes = counts()
        assert 0 < members < rows
        assert members % batch == 0 and changes == members  # whole batches, each member with its status row
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM audit_entries WHERE action = 'members.import'")) == 0

        again = _flask(env, "members", "import", str(path), "--batch-size", str(batch))
        assert again.returncode == 0, again.stderr
        assert (f"Imported: {rows - members:,} new, 0 updated, {members:,} unchanged; 0 duplicates and 0 errors"
                in again.stdout)
        assert counts() == (rows, rows)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(DISTINCT national_id) FROM members")) == rows
            assert conn.scalar(text("SELECT count(DISTINCT membership_number) FROM members")) == rows
    finally:
        engine.dispose()
        drop()
