"""Member imports: reading real files, mapping, validation, all-or-nothing, idempotence, scope, resume."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, ImportUpload, Job, Member, MemberStatusChange
from app.models.base import utcnow
from app.services import exports, jobs
from app.services import imports as svc
from app.services import storage
from app.services.errors import ServiceError

DATA = Path(__file__).resolve().parent.parent / "data"
GOOD_FILES = ["members_utf8.csv", "members_utf8_bom_semicolon.csv", "members_utf16_tab.csv",
              "members_cp1252_pipe.csv", "members.xlsx"]


@pytest.fixture(autouse=True)
def _uploads_in_tmp(app, tmp_path, monkeypatch):
    """Uploaded files go to a temporary folder, not the instance folder."""
    monkeypatch.setitem(app.config, "IMPORT_UPLOAD_DIR", str(tmp_path / "uploads"))


def run(path, actor=None, *, mode="valid", dry_run=False, default_unit_id=None, batch_size=1000, **kw):
    info = svc.inspect_file(path)
    settings = svc.ImportSettings(mapping=kw.pop("mapping", None) or svc.guess_mapping(info.headers),
                                  mode=mode, default_unit_id=default_unit_id, batch_size=batch_size, **kw)
    result = svc.import_file(actor, path, info, settings, dry_run=dry_run, on_batch=lambda p: db.session.commit())
    db.session.commit()
    return result


def members() -> dict[str, Member]:
    return {m.national_id: m for m in db.session.scalars(select(Member))}


def count(model=Member) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,fmt,encoding,delimiter", [
    ("members_utf8.csv", "csv", "utf-8", ","),
    ("members_utf8_bom_semicolon.csv", "csv", "utf-8-sig", ";"),
    ("members_utf16_tab.csv", "csv", "utf-16", "\t"),
    ("members_cp1252_pipe.csv", "csv", "cp1252", "|"),
    ("members.xlsx", "xlsx", None, None),
])
def test_files_are_sniffed(ctx, name, fmt, encoding, delimiter):
    info = svc.inspect_file(DATA / name)
    assert (info.format, info.encoding, info.delimiter) == (fmt, encoding, delimiter)
    assert info.headers[:3] == ["Surname", "First Name", "ID No"]
    assert info.header_line == (3 if fmt == "xlsx" else 1)  # the workbook has a title row first


@pytest.mark.parametrize("name", GOOD_FILES)
def test_every_format_imports_the_same_people(ctx, tree, name):
    result = run(DATA / name)
    assert result.summary() == {"rows": 10, "new": 10, "updated": 0, "unchanged": 0, "duplicates": 0, "errors": 0}
    people = members()
    zoe = people["100003/11/1"]
    assert (zoe.first_name, zoe.last_name, zoe.surname_key) == ("Zoë", "Müller", "muller")
    assert (zoe.phone, zoe.email, zoe.gender) == ("+260955100003", "zoe.muller@example.org", "female")
    assert zoe.date_of_birth == date(1992, 3, 3) and zoe.joined_on == date(2021, 1, 15)
    assert zoe.unit_id == tree["w1"].id and [t.name for t in zoe.tags] == ["volunteer", "youth"]
    assert people["100004/11/1"].unit_id == tree["w2"].id  # by name path
    assert people["100002/11/1"].joined_on == date(2019, 6, 30)  # an Excel serial day in the workbook
    assert people["100001/11/1"].phone == "+260977100001"
    assert {m.status for m in people.values()} == {"pending"}
    assert count(MemberStatusChange) == 10


def test_guessing_columns_from_headers():
    guess = svc.guess_mapping(["Surname", "First name", "ID No", "Cell", "E-mail Address", "DOB", "Ward Code",
                               "Notes", "Something else"])
    assert guess == ["last_name", "first_name", "national_id", "phone", "email", "date_of_birth", "unit", "notes", ""]
    assert svc.guess_mapping(["Last name", "Given names", "NRC No.", "Mobile Number"]) == [
        "last_name", "first_name", "national_id", "phone"]
    assert svc.guess_mapping(["Name", "Phone", "Ward"]) == ["full_name", "phone", "unit"]
    # Export headers come back as they went out.
    assert svc.guess_mapping(list(exports.EXPORT_COLUMNS.values()))[:4] == [
        "membership_number", "first_name", "last_name", "other_names"]


@pytest.mark.parametrize("value,order,expected", [
    ("25/04/1990", "DMY", date(1990, 4, 25)),
    ("04/25/1990", "MDY", date(1990, 4, 25)),
    ("1990-04-25", "DMY", date(1990, 4, 25)),
    ("1990-04-25 00:00:00", "DMY", date(1990, 4, 25)),
    ("25.04.1990", "DMY", date(1990, 4, 25)),
    ("25-Apr-1990", "DMY", date(1990, 4, 25)),
    ("25 April 1990", "DMY", date(1990, 4, 25)),
    ("April 25, 1990", "DMY", date(1990, 4, 25)),
    ("19900425", "DMY", date(1990, 4, 25)),
    ("32988", "DMY", date(1990, 4, 25)),  # an Excel serial day number typed as text
    (32988.0, "DMY", date(1990, 4, 25)),  # ... or read from a number cell
    ("25/04/90", "DMY", date(1990, 4, 25)),
])
def test_dates_in_several_formats(value, order, expected):
    assert svc.parse_date(value, order) == expected


@pytest.mark.parametrize("value", ["31/02/1990", "25/13/1990", "yesterday", "04/25/1990"])
def test_impossible_dates_are_refused(value):
    with pytest.raises(ServiceError, match="is not a date"):
        svc.parse_date(value, "DMY")


@pytest.mark.parametrize("name,message", [
    ("empty.csv", "The file is empty."),
    ("binary.csv", "This looks like a PNG image"),
    ("nul_bytes.csv", "it contains binary data"),
    ("no_header.csv", "No recognisable header row"),
    ("wide_header.csv", "Line 1 has 10,000 columns; at most 200 are read"),
    ("old_excel.xls", "old-style Excel (.xls)"),
    ("not_excel.xlsx", "ZIP archive, not an Excel workbook"),
])
def test_bad_files_get_a_clear_message(ctx, name, message):
    with pytest.raises(svc.ImportFileError) as info:
        svc.inspect_file(DATA / name)
    assert message in info.value.message


def test_too_large_files_are_refused(ctx, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 500)
    with pytest.raises(svc.ImportFileError, match="too large"):
        svc.inspect_file(DATA / "members_utf8.csv")


def test_a_row_of_ten_thousand_columns_is_a_row_error(ctx, tree):
    result = run(DATA / "wide_row.csv", dry_run=True)
    assert result.summary()["new"] == 1
    assert result.bad_rows == [(3, "This row has 10,000 cells but the header names only 10 columns.")]


# --- validation ---------------------------------------------------------------------------


def test_bad_rows_are_reported_with_line_and_reason(ctx, tree, tmp_path):
    report = tmp_path / "errors.csv"
    info = svc.inspect_file(DATA / "members_bad_rows.csv")
    settings = svc.ImportSettings(mapping=svc.guess_mapping(info.headers))
    result = svc.import_file(None, DATA / "members_bad_rows.csv", info, settings, dry_run=True, report_path=report)
    assert result.summary() == {"rows": 11, "new": 5, "updated": 0, "unchanged": 0, "duplicates": 1, "errors": 5}
    reasons = dict(result.bad_rows)
    assert reasons[5] == "First Name: First name is required."
    assert "is not a valid phone number" in reasons[6]
    assert "'31/02/1990' is not a date" in reasons[7] and "not a valid email address" in reasons[7]
    assert reasons[8] == "Same national ID as line 2."
    assert reasons[9] == "Ward: Unknown ward “NOWHERE”."
    assert "is a spreadsheet formula" in reasons[10]
    assert count() == 0  # a preview writes nothing
    rows = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["Line", "Reason", *info.headers]
    assert [r[0] for r in rows[1:]] == ["5", "6", "7", "8", "9", "10"]
    assert rows[-1][2] == "'=cmd|' /C calc'!A0"  # neutralised in the report too


def test_duplicates_against_the_registry(ctx, tree, make_member):
    make_member(tree["w1"], phone="0977100001", first_name="Other", last_name="Person")  # Chileshe's phone
    result = run(DATA / "members_utf8.csv", dry_run=True)
    assert result.summary()["duplicates"] == 1
    (line, reason), = result.bad_rows
    assert line == 2 and reason.startswith("A member with this phone number already exists: Other Person (M")


def test_valid_mode_imports_the_valid_rows_and_audits_counts(ctx, tree):
    result = run(DATA / "members_bad_rows.csv")
    assert result.summary()["new"] == 5 and count() == 5
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.import"))
    assert entry.changes["new"] == 5 and entry.changes["errors"] == 5 and entry.changes["duplicates"] == 1
    assert entry.changes["file"] == "members_bad_rows.csv" and entry.changes["mode"] == "valid"
    assert entry.unit_id == tree["c1"].id  # the smallest unit holding every imported row


def test_all_or_nothing_writes_nothing_when_one_row_is_bad(ctx, tree):
    result = run(DATA / "members_bad_rows.csv", mode="all")
    assert result.refused and count() == 0 and count(MemberStatusChange) == 0
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.import"))
    assert entry.changes["written"] is False and "refused" in entry.summary
    good = run(DATA / "members_utf8.csv", mode="all")
    assert not good.refused and count() == 10


def test_reimporting_the_same_file_changes_nothing(ctx, tree):
    run(DATA / "members_utf8.csv", batch_size=3)
    numbers = {m.national_id: m.membership_number for m in members().values()}
    again = run(DATA / "members.xlsx", batch_size=4)  # the same people, from the workbook
    assert again.summary()["unchanged"] == 10 and again.summary()["new"] == 0
    assert count() == 10 and count(MemberStatusChange) == 10
    assert {m.national_id: m.membership_number for m in members().values()} == numbers


def test_rows_matching_a_member_update_only_what_changed(ctx, tree, tmp_path):
    run(DATA / "members_utf8.csv")
    banda = members()["100001/11/1"]
    path = tmp_path / "changes.csv"
    path.write_text(
        "Membership number,Surname,First name,Cell,Ward,Status,Notes\n"
        f"{banda.membership_number},Banda,Chileshe,0977 999 001,W2,active,moved\n"
        "M9999999,Nobody,Known,0977999002,W1,,\n",
        encoding="utf-8",
    )
    result = run(path)
    assert result.summary()["updated"] == 1 and result.summary()["errors"] == 1
    assert "No member has membership number M9999999" in result.bad_rows[0][1]
    db.session.expire_all()
    banda = db.session.get(Member, banda.id)
    assert (banda.phone, banda.unit_id, banda.status, banda.notes) == ("+260977999001", tree["w2"].id, "active", "moved")
    assert banda.email == "chileshe.banda@example.org"  # an unmapped column never erases
    change = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.update",
                                                        AuditEntry.object_id == str(banda.id)))
    assert change.changes["phone"] == {"before": "+260977100001", "after": "+260977999001"}
    assert [c.to_status for c in banda.status_changes][:1] == ["active"]


def test_status_changes_follow_the_lifecycle(ctx, tree, make_member, tmp_path):
    member = make_member(tree["w1"], national_id="500001/11/1", status="pending")
    member.status = "deceased"
    db.session.commit()
    path = tmp_path / "status.csv"
    path.write_text("ID No,Surname,First name,Status\n500001/11/1,%s,%s,active\n" % (member.last_name,
                                                                                     member.first_name))
    result = run(path, default_unit_id=tree["w1"].id)
    assert "a deceased member cannot become active" in result.bad_rows[0][1]


def test_full_name_column_and_default_ward(ctx, tree, tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("Name;Phone\nBanda, Chileshe;0977 555 001\nJohn Mwale Phiri;0977555002\n", encoding="utf-8")
    result = run(path, default_unit_id=tree["w2"].id)
    assert result.summary()["new"] == 2
    names = sorted((m.first_name, m.last_name, m.unit_id) for m in db.session.scalars(select(Member)))
    assert names == [("Chileshe", "Banda", tree["w2"].id), ("John Mwale", "Phiri", tree["w2"].id)]


def test_rows_without_any_key_are_not_duplicated_on_a_rerun(ctx, tree, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("Surname,First name,Ward,Date of birth\nBanda,Ann,W1,01/02/1990\nBanda,Ben,W1,\n")
    assert run(path).summary()["new"] == 2
    assert run(path).summary()["unchanged"] == 2 and count() == 2


def test_unknown_fields_and_missing_columns_are_refused(ctx, tree):
    with pytest.raises(ServiceError, match="first name and the last name"):
        svc.check_mapping(["phone", "unit"], None)
    with pytest.raises(ServiceError, match="ward"):
        svc.check_mapping(["first_name", "last_name"], None)
    with pytest.raises(ServiceError, match="more than one column"):
        svc.check_mapping(["first_name", "last_name", "phone", "phone"], tree["w1"].id)


# --- scope --------------------------------------------------------------------------------


def test_a_coordinator_imports_only_into_their_wards(ctx, tree, staff):
    result = run(DATA / "members_other_wards.csv", staff["coordinator"])
    assert result.summary()["new"] == 1
    assert dict(result.bad_rows) == {3: "Ward: “W4” is not a ward you can import into.",
                                     4: "Ward: “W3” is not a ward you can import into."}
    assert {m.unit_id for m in db.session.scalars(select(Member))} == {tree["w1"].id}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.import"))
    assert entry.actor_id == staff["coordinator"].id and entry.unit_id == tree["w1"].id


def test_a_coordinator_cannot_update_or_discover_members_elsewhere(ctx, tree, staff, make_member, tmp_path):
    outsider = make_member(tree["w4"], national_id="700001/11/1", phone="0977700001")
    path = tmp_path / "sneaky.csv"
    path.write_text("ID No,Surname,First name,Ward,Cell\n"
                    "700001/11/1,Changed,Name,W1,\n"
                    "700002/11/1,New,Person,W1,0977700001\n")
    result = run(path, staff["coordinator"])
    assert dict(result.bad_rows) == {2: "A member with this national ID already exists.",
                                     3: "A member with this phone number already exists."}
    db.session.refresh(outsider)
    assert outsider.last_name != "Changed"


def test_the_default_ward_must_be_in_scope(ctx, tree, staff):
    info = svc.inspect_file(DATA / "members_utf8.csv")
    settings = svc.ImportSettings(mapping=svc.guess_mapping(info.headers), default_unit_id=tree["w4"].id)
    with pytest.raises(ServiceError, match="outside your area"):
        svc.Importer(staff["coordinator"], DATA / "members_utf8.csv", info, settings)


# --- round trip and injection ------------------------------------------------------------


def test_import_then_export_round_trips_the_same_data(ctx, tree, tmp_path):
    run(DATA / "members_utf8.csv")
    columns = list(exports.EXPORT_COLUMNS)
    exported = b"".join(exports.csv_chunks(exports.export_clauses(None, []), columns)).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported)))
    source = list(csv.DictReader(open(DATA / "members_utf8.csv", encoding="utf-8")))
    assert len(rows) == 10
    by_id = {r["National ID"]: r for r in rows}
    for person in source:
        out = by_id[person["ID No"]]
        assert (out["Last name"], out["First name"]) == (person["Surname"], person["First Name"])
        assert out["Phone"] == "'+260" + "".join(c for c in person["Cell"] if c.isdigit())[-9:]
        assert out["Email"] == person["E-mail"].lower()
        assert out["Date of birth"] == svc.parse_date(person["Date of Birth"]).isoformat()
        assert sorted(filter(None, out["Tags"].split(", "))) == sorted(
            t.strip() for t in person["Tags"].split(",") if t.strip())
    # The export imports back as it is: nothing new, nothing changed.
    path = tmp_path / "export.csv"
    path.write_text(exported, encoding="utf-8")
    assert run(path).summary()["unchanged"] == 10
    xlsx = tmp_path / "export.xlsx"
    exports.write_xlsx(exports.export_clauses(None, []), columns, xlsx)
    assert run(xlsx).summary()["unchanged"] == 10


def test_exports_neutralise_formulas(ctx, tree, make_member, tmp_path):
    make_member(tree["w1"], first_name="=HYPERLINK(\"x\")", last_name="@SUM(A1)", notes="-2+3", phone="0977000009")
    columns = ["first_name", "last_name", "phone", "notes"]
    text = b"".join(exports.csv_chunks(exports.export_clauses(None, []), columns)).decode("utf-8-sig")
    assert text.splitlines()[1] == "\"'=HYPERLINK(\"\"x\"\")\",'@SUM(A1),'+260977000009,'-2+3"
    path = tmp_path / "x.xlsx"
    exports.write_xlsx(exports.export_clauses(None, []), columns, path)
    from openpyxl import load_workbook

    ws = load_workbook(path).active
    cell = ws.cell(row=2, column=1)
    assert cell.value == "=HYPERLINK(\"x\")" and cell.data_type == "s"  # text, never a formula
    assert ws.cell(row=2, column=3).value == "+260977000009"


# --- background jobs: preview, import, interruption ------------------------------------


def _upload(actor, name="members_utf8.csv", mode_options=None):
    with open(DATA / name, "rb") as fh:
        upload = svc.save_upload(actor, fh, name)
    svc.set_mapping(actor, upload, svc.guess_mapping(upload.headers),
                    {"default_unit_id": None, "date_order": "DMY", "default_status": "active", **(mode_options or {})})
    db.session.commit()
    return upload


def test_preview_and_import_jobs(ctx, tree, staff):
    upload = _upload(staff["admin"], "members_bad_rows.csv")
    preview = svc.start_preview(staff["admin"], upload)
    db.session.commit()
    jobs.submit(preview)
    preview = db.session.get(Job, preview.id)
    assert preview.state == "succeeded" and preview.result["new"] == 5 and preview.errors == 6
    assert preview.result["bad_rows"][0] == [5, "First Name: First name is required."]
    assert [f.name for f in preview.files] == ["members_bad_rows-errors.csv"]
    assert count() == 0
    stored = upload.stored_name
    job = svc.start_import(staff["admin"], upload, "valid")
    db.session.commit()
    jobs.submit(job)
    job = db.session.get(Job, job.id)
    assert job.state == "succeeded" and job.result["new"] == 5 and (job.done, job.total) == (11, 11)
    assert count() == 5 and {m.status for m in db.session.scalars(select(Member))} == {"active"}
    assert not storage.exists(stored) and upload.stored_name == ""  # the upload is deleted when done
    with pytest.raises(ServiceError, match="gone"):
        svc.start_import(staff["admin"], upload, "valid")


def test_an_all_or_nothing_job_fails_with_its_report(ctx, tree, staff):
    upload = _upload(staff["admin"], "members_bad_rows.csv")
    job = svc.start_import(staff["admin"], upload, "all")
    db.session.commit()
    jobs.submit(job)
    job = db.session.get(Job, job.id)
    assert job.state == "failed" and job.message.startswith("Nothing was imported: 6 of 11 rows have problems")
    assert [f.name for f in job.files] == ["members_bad_rows-errors.csv"] and count() == 0


def test_an_interrupted_import_job_resumes_without_duplicates(ctx, tree, staff, app, tmp_path, monkeypatch):
    lines = ["Surname,First name,ID No,Cell,Ward"] + [
        f"Person{i},Test,{600000 + i}/11/1,0977{600000 + i},W{1 + i % 2}" for i in range(25)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    with open(path, "rb") as fh:
        upload = svc.save_upload(staff["admin"], fh, "many.csv")
    svc.set_mapping(staff["admin"], upload, svc.guess_mapping(upload.headers),
                    {"default_unit_id": None, "date_order": "DMY", "default_status": "pending"})
    monkeypatch.setitem(app.config, "IMPORT_BATCH_SIZE", 10)
    job = svc.start_import(staff["admin"], upload, "valid")
    db.session.commit()

    real_progress = jobs.JobContext.progress
    calls = {"n": 0}

    def dying_progress(self, *args, **kwargs):
        real_progress(self, *args, **kwargs)  # commits the batch with its resume point...
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # ...then the process dies

    monkeypatch.setattr(jobs.JobContext, "progress", dying_progress)
    with pytest.raises(KeyboardInterrupt):
        jobs.run(job.id)  # what the worker runs (Huey would swallow the KeyboardInterrupt)
    db.session.rollback()
    monkeypatch.setattr(jobs.JobContext, "progress", real_progress)
    assert count() == 20 and count(MemberStatusChange) == 20  # whole batches only
    row = db.session.get(Job, job.id)
    assert row.state == "running"
    row.lease_expires_at = utcnow() - timedelta(seconds=1)  # its worker stopped beating
    db.session.commit()
    assert jobs.reap()["requeued"] == [job.id]  # queued again, and (immediate queue) run at once
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.state == "succeeded" and row.result["new"] == 25 and row.result["rows"] == 25
    assert count() == 25 and count(MemberStatusChange) == 25
    assert db.session.scalar(select(func.count(func.distinct(Member.national_id)))) == 25


def test_saved_mappings_apply_by_header(ctx, tree, staff):
    headers = ["Col A", "Col B", "Branch"]
    mapping = svc.save_mapping(staff["admin"], "ward sheets", headers, ["last_name", "first_name", "unit"],
                               {"date_order": "MDY"})
    db.session.commit()
    assert svc.mapping_from_saved(["Branch", "Col B", "Col A", "Extra"], mapping) == [
        "unit", "first_name", "last_name", ""]
    assert [m.name for m in svc.saved_mappings(staff["admin"])] == ["ward sheets"]
    assert svc.saved_mappings(staff["coordinator"]) == []


def test_uploads_are_visible_to_their_owner_and_global_importers(ctx, tree, staff, make_user):
    upload = _upload(staff["coordinator"])
    other = make_user("coord2@test.org", "ward_coordinator", tree["w2"])
    visible = lambda user: db.session.scalars(svc.visible_uploads(user)).all()  # noqa: E731
    assert visible(staff["coordinator"]) == [upload] and visible(staff["admin"]) == [upload]
    assert visible(other) == []


def test_abandoned_uploads_are_cleaned_up(ctx, tree, staff):
    upload = _upload(staff["admin"])
    upload.created_at = utcnow() - timedelta(days=30)
    db.session.commit()
    assert svc.cleanup_uploads() == 1 and upload.stored_name == ""
    assert db.session.get(ImportUpload, upload.id) is not None  # the record stays
