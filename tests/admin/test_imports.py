"""The console import flow (upload, columns, preview, import) and the member list export."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, ImportMapping, ImportUpload, Job, Member
from app.services import rbac
from tests.conftest import csrf_token_from, login

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def _uploads_in_tmp(app, tmp_path, monkeypatch):
    """Uploaded files go to a temporary folder, not the instance folder."""
    monkeypatch.setitem(app.config, "IMPORT_UPLOAD_DIR", str(tmp_path / "uploads"))


def upload(client, name: str, data: bytes | None = None, **extra):
    page = client.get("/admin/imports/")
    assert page.status_code == 200
    body = {"csrf_token": csrf_token_from(page.get_data(as_text=True)),
            "file": (io.BytesIO(data if data is not None else (DATA / name).read_bytes()), name), **extra}
    return client.post("/admin/imports/", data=body, content_type="multipart/form-data")


def submit_mapping(client, upload_id: int, changes: dict | None = None, **fields):
    page = client.get(f"/admin/imports/{upload_id}/mapping").get_data(as_text=True)
    selected = dict(re.findall(r'name="(col-\d+)".*?<option value="([a-z_]*)" selected', page, re.S))
    data = {"csrf_token": csrf_token_from(page), "date_order": "DMY", "default_status": "pending",
            "default_unit": "", **{k: v for k, v in selected.items()}, **(changes or {}), **fields}
    return client.post(f"/admin/imports/{upload_id}/mapping", data=data)


def start(client, upload_id: int, mode: str = "valid"):
    page = client.get(f"/admin/imports/{upload_id}/preview").get_data(as_text=True)
    return client.post(f"/admin/imports/{upload_id}/start", data={"csrf_token": csrf_token_from(page), "mode": mode})


def latest_upload() -> ImportUpload:
    return db.session.scalar(select(ImportUpload).order_by(ImportUpload.id.desc()))


def member_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Member))


@pytest.mark.parametrize("name", ["members_utf8.csv", "members_utf16_tab.csv", "members.xlsx"])
def test_admin_imports_a_file_through_the_console(client, tree, staff, name):
    login(client, "admin@test.org")
    response = upload(client, name)
    assert response.status_code == 302 and response.headers["Location"].endswith("/mapping")
    up = latest_upload()
    page = client.get(f"/admin/imports/{up.id}/mapping").get_data(as_text=True)
    assert "Chileshe" in page and "Lukashya Ward 1" in page  # sample values, and the wards for the default
    assert re.search(r'name="col-0".*?<option value="last_name" selected', page, re.S)

    response = submit_mapping(client, up.id)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/{up.id}/preview")
    preview = client.get(f"/admin/imports/{up.id}/preview").get_data(as_text=True)
    assert 'data-state="succeeded"' in preview and "New members" in preview and member_count() == 0
    assert "Import 10 rows" in preview

    response = start(client, up.id)
    assert response.status_code == 302
    job_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    page = client.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "Succeeded" in page and "10 of 10 done" in page and "New: 10" in page
    assert member_count() == 10
    listing = client.get("/admin/imports/").get_data(as_text=True)
    assert name in listing and "import succeeded" in listing


def test_coordinator_sees_bad_rows_and_downloads_the_report(client, tree, staff):
    login(client, "coord@test.org")
    upload(client, "members_other_wards.csv")
    up = latest_upload()
    submit_mapping(client, up.id)
    preview = client.get(f"/admin/imports/{up.id}/preview").get_data(as_text=True)
    assert "“W4” is not a ward you can import into." in preview
    assert "“W3” is not a ward you can import into." in preview
    link = re.search(r'id="error-report" href="([^"]+)"', preview).group(1)
    report = client.get(link)
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(report.get_data().decode("utf-8-sig"))))
    assert [r[:2] for r in rows[1:]] == [["3", "Ward: “W4” is not a ward you can import into."],
                                         ["4", "Ward: “W3” is not a ward you can import into."]]
    response = start(client, up.id)
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").split("/")[-1]))
    assert job.state == "succeeded" and job.result["new"] == 1 and job.errors == 2
    assert {m.unit_id for m in db.session.scalars(select(Member))} == {tree["w1"].id}
    assert [f.name for f in job.files] == ["members_other_wards-errors.csv"]
    assert client.get(f"/admin/jobs/{job.id}/files/{job.files[0].id}").status_code == 200


def test_all_or_nothing_from_the_console(client, tree, staff):
    login(client, "admin@test.org")
    upload(client, "members_bad_rows.csv")
    up = latest_upload()
    submit_mapping(client, up.id)
    response = start(client, up.id, mode="all")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Failed" in page and "Nothing was imported: 6 of 11 rows have problems" in page
    assert member_count() == 0


@pytest.mark.parametrize("name,data,message", [
    ("empty.csv", b"", "The file is empty."),
    ("photo.csv", (DATA / "binary.csv").read_bytes(), "This looks like a PNG image"),
    ("list.csv", (DATA / "no_header.csv").read_bytes(), "No recognisable header row"),
    ("wide.csv", (DATA / "wide_header.csv").read_bytes(), "has 10,000 columns"),
    ("old.xls", (DATA / "old_excel.xls").read_bytes(), "old-style Excel"),
])
def test_bad_uploads_get_a_clear_message(client, tree, staff, name, data, message):
    login(client, "admin@test.org")
    response = upload(client, name, data)
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ImportUpload)) == 0


def test_too_large_uploads_are_refused(client, app, tree, staff, monkeypatch):
    login(client, "admin@test.org")
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 300)
    response = upload(client, "members_utf8.csv")
    assert response.status_code == 200 and "The file is too large" in response.get_data(as_text=True)
    big = b"Surname,First name\n" + b"x,y\n" * 400_000  # announced as larger than the limit: never read
    response = upload(client, "big.csv", big)
    assert response.status_code == 303
    assert "too large" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_imports_may_be_larger_than_other_uploads(client, app, tree, staff, monkeypatch):
    """The app-wide MAX_CONTENT_LENGTH (photos, attachments) does not cap import files."""
    login(client, "admin@test.org")
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 500)
    response = upload(client, "members_utf8.csv")  # about 1 KB with the form around it
    assert response.status_code == 302 and response.headers["Location"].endswith("/mapping")


def test_mapping_mistakes_are_explained_and_mappings_saved(client, tree, staff):
    login(client, "admin@test.org")
    upload(client, "members_utf8.csv")
    up = latest_upload()
    response = submit_mapping(client, up.id, {"col-0": ""})  # no surname column
    assert response.status_code == 200
    assert "Choose the columns holding the first name and the last name" in response.get_data(as_text=True)
    response = submit_mapping(client, up.id, {"col-7": ""}, default_unit=str(tree["w2"].id), save_as="Ward sheet")
    assert response.status_code == 302
    saved = db.session.scalar(select(ImportMapping))
    assert saved.name == "Ward sheet" and saved.columns["surname"] == "last_name" and saved.columns["ward"] == ""
    # The next file reuses it.
    page = client.get("/admin/imports/").get_data(as_text=True)
    assert "Ward sheet" in page
    upload(client, "members_utf8.csv", saved_mapping=str(saved.id))
    second = latest_upload()
    assert second.mapping[7] == "" and second.mapping[0] == "last_name"


def test_uploads_of_others_are_invisible(client, tree, staff, make_user):
    login(client, "coord@test.org")
    upload(client, "members_utf8.csv")
    up = latest_upload()
    make_user("coord2@test.org", "ward_coordinator", tree["w2"])
    db.session.commit()
    other = client.application.test_client()
    login(other, "coord2@test.org")
    for path in (f"/admin/imports/{up.id}/mapping", f"/admin/imports/{up.id}/preview",
                 f"/admin/imports/{up.id}/preview/status"):
        assert other.get(path).status_code == 404
    admin = client.application.test_client()
    login(admin, "admin@test.org")  # a global importer may help
    assert admin.get(f"/admin/imports/{up.id}/mapping").status_code == 200


def test_posts_need_the_csrf_token(client, tree, staff):
    login(client, "admin@test.org")
    response = client.post("/admin/imports/", data={"file": (io.BytesIO(b"a,b\n"), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400


def test_plain_members_cannot_import(client, tree, staff):
    login(client, "member@test.org")
    assert client.get("/admin/imports/").status_code == 403


# --- export -------------------------------------------------------------------------------


@pytest.fixture()
def registry(tree, make_member):
    people = [
        make_member(tree["w1"], first_name="Ann", last_name="Banda", phone="0977000101", status="active"),
        make_member(tree["w1"], first_name="Ben", last_name="Banda", phone="0977000102", status="pending"),
        make_member(tree["w2"], first_name="Cid", last_name="Phiri", phone="0977000103", status="active"),
        make_member(tree["w4"], first_name="Dee", last_name="Zulu", phone="0977000104", status="active"),
    ]
    db.session.commit()
    return people


def exported(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_export_is_exactly_the_filtered_list(client, staff, registry, tree):
    login(client, "admin@test.org")
    rows = exported(client.get("/admin/member/export/?format=csv"))
    assert sorted(r["First name"] for r in rows) == ["Ann", "Ben", "Cid", "Dee"]
    assert rows[0]["Phone"] == "'+260977000101"  # neutralised for spreadsheets
    rows = exported(client.get(f"/admin/member/export/?unit={tree['c1'].id}&flt0_status_equals=active"))
    assert sorted(r["First name"] for r in rows) == ["Ann", "Cid"]
    rows = exported(client.get("/admin/member/export/?search=banda&col=first_name&col=last_name"))
    assert rows == [{"First name": "Ann", "Last name": "Banda"}, {"First name": "Ben", "Last name": "Banda"}]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.export")
                              .order_by(AuditEntry.id.desc()))
    assert entry.changes["filter"]["search"] == "banda" and entry.changes["rows"] == 2
    assert entry.changes["columns"] == ["first_name", "last_name"]
    listing = client.get("/admin/member/?search=banda").get_data(as_text=True)
    assert 'id="member-export"' in listing and 'name="search" value="banda"' in listing


def test_coordinators_export_only_their_wards(client, staff, registry):
    login(client, "coord@test.org")
    rows = exported(client.get("/admin/member/export/?format=csv"))
    assert sorted(r["First name"] for r in rows) == ["Ann", "Ben"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.export"))
    assert entry.actor_id == staff["coordinator"].id and entry.unit_id == staff["coordinator"].assignments[0].unit_id


def test_xlsx_export(client, staff, registry):
    from openpyxl import load_workbook

    login(client, "admin@test.org")
    response = client.get("/admin/member/export/?format=xlsx&flt0_status_equals=active")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(response.get_data())).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("Membership number", "First name", "Last name")
    assert sorted(r[1] for r in rows[1:]) == ["Ann", "Cid", "Dee"]
    assert "+260977000101" in [r[7] for r in rows]  # exact values in XLSX (text cells)


def test_export_needs_the_export_permission(client, tree, registry, make_user):
    role = rbac.create_role(None, "reader", "", ["members.read"])
    user = make_user("reader@test.org")
    rbac.assign_role(None, user, role, None)
    db.session.commit()
    login(client, "reader@test.org")
    assert client.get("/admin/member/").status_code == 200
    assert "member-export" not in client.get("/admin/member/").get_data(as_text=True)
    assert client.get("/admin/member/export/?format=csv").status_code == 403


def test_unknown_export_format_or_column(client, staff, registry):
    login(client, "admin@test.org")
    response = client.get("/admin/member/export/?format=pdf")
    assert response.status_code == 302
    assert "Export as csv or xlsx" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert client.get("/admin/member/export/?col=password").status_code == 302
