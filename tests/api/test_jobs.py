"""Long work through the API: imports and print runs answer 202 + Location; jobs and their files.

The queue is immediate in the tests (the job has run when the 202 comes back),
except in the test that shows the web process only enqueues.
"""

from __future__ import annotations

import io

from sqlalchemy import func, select

from app import queue
from app.extensions import db
from app.models import Job, Member, MembershipCard
from app.services import cards as card_service
from tests.api.conftest import assert_error

CSV = b"first_name,last_name,ward,national_id\nAda,Banda,W1,123456/10/1\nBo,Phiri,W1,223456/10/1\n"
BAD = CSV + b"Cy,,W1,323456/10/1\n"


def _upload(data: bytes = CSV, name: str = "people.csv", **fields: str) -> dict:
    return {"file": (io.BytesIO(data), name), **fields}


def _post_import(client, **kwargs):
    return client.post("/members/imports", data=_upload(**kwargs), content_type="multipart/form-data")


def test_an_import_through_the_api_runs_as_a_job(as_admin, tree):
    response = _post_import(as_admin)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "members.import" and job["status"] == "done"
    followed = as_admin.get(f"/jobs/{job['id']}").get_json()["job"]
    assert (followed["done"], followed["total"], followed["errors"]) == (2, 2, 0)
    assert followed["result"]["new"] == 2 and not any(k.startswith("_") for k in followed["result"])
    names = set(db.session.scalars(select(Member.last_name).where(Member.unit_id == tree["w1"].id)))
    assert {"Banda", "Phiri"} <= names


def test_an_imports_error_report_downloads_from_its_job(as_admin, tree):
    job = _post_import(as_admin, data=BAD, name="with errors.csv").get_json()["job"]
    assert job["status"] == "done" and job["errors"] == 1
    (report,) = job["files"]
    assert report["content_type"] == "text/csv" and report["size"] > 0
    download = as_admin.get(f"/jobs/{job['id']}/files/{report['name']}")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert b"Cy" in download.data and "attachment" in download.headers["Content-Disposition"]
    assert_error(as_admin.get(f"/jobs/{job['id']}/files/nothing.csv"), 404)


def test_all_or_nothing_refuses_a_file_with_errors(as_admin, tree):
    job = _post_import(as_admin, data=BAD, mode="all").get_json()["job"]
    assert job["status"] == "failed" and "Nothing was imported" in job["message"]
    assert job["result"]["rows"] == 3
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.last_name == "Banda")) == 0


def test_import_input_is_checked(as_admin, as_coord, api, staff, tree):
    assert_error(as_admin.post("/members/imports", data={"mode": "valid"}, content_type="multipart/form-data"),
                 422, "file")
    assert_error(as_admin.post("/members/imports", json={"mode": "valid"}), 422, "file")
    assert_error(_post_import(as_admin, mode="some"), 422, "mode")
    assert_error(_post_import(as_admin, date_order="XYZ"), 422, "date_order")
    assert_error(_post_import(as_admin, default_unit_id="abc"), 400, "default_unit_id")
    assert_error(_post_import(as_admin, mapping_id="999"), 404, "mapping_id")
    assert_error(_post_import(as_admin, data=b"\x00\x01\x02 not a sheet", name="x.xlsx"), 422)
    # A coordinator of W1 may not name W4 as the ward of rows without one.
    assert_error(_post_import(as_coord, default_unit_id=str(tree["w4"].id)), 422, "default_unit_id")
    assert_error(_post_import(api.login("member@test.org")), 403)
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_print_run_issues_where_needed_and_prints_every_card(as_admin, make_member, tree):
    has_card = make_member(tree["w1"], status="active")
    existing = card_service.issue_card(None, has_card)
    db.session.commit()
    without = make_member(tree["w1"], status="active")
    response = as_admin.post("/cards/print", json={"member_ids": [has_card.id, without.id, without.id]})
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "cards.batch" and job["status"] == "done"
    assert job["result"] == {"members": 2, "cards_printed": 2, "skipped": 0, "problems": 0}
    assert db.session.scalar(select(func.count()).where(MembershipCard.member_id == without.id)) == 1
    assert card_service.current_card(has_card).id == existing.id  # printed as it was, not renewed
    (sheet,) = job["files"]
    pdf = as_admin.get(f"/jobs/{job['id']}/files/{sheet['name']}")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert len(pdf.data) == sheet["size"]


def test_a_print_run_for_a_unit(as_admin, make_member, tree):
    make_member(tree["w2"], status="active")
    make_member(tree["w1"], status="pending")  # not active: left out of a unit's run
    job = as_admin.post("/cards/print", json={"unit_id": tree["c1"].id}).get_json()["job"]
    assert job["status"] == "done" and job["result"]["cards_printed"] == 1


def test_print_input_is_checked(as_admin, as_coord, api, staff, tree, make_member):
    assert_error(as_admin.post("/cards/print", json={}), 422, "member_ids")
    assert_error(as_admin.post("/cards/print", json={"member_ids": [1], "unit_id": tree["w1"].id}), 422, "member_ids")
    assert_error(as_admin.post("/cards/print", json={"member_ids": []}), 422, "member_ids")
    assert_error(as_admin.post("/cards/print", json={"member_ids": ["1"]}), 400, "member_ids")
    assert_error(as_admin.post("/cards/print", json={"unit_id": 999999}), 422, "unit_id")
    assert_error(as_admin.post("/cards/print", json={"unit_id": tree["w1"].id, "card_type": "gold"}), 422, "card_type")
    assert_error(as_coord.post("/cards/print", json={"unit_id": tree["w1"].id}), 403)  # cards.read only


def test_a_job_is_seen_by_its_starter_and_super_admins_only(as_admin, api, staff, tree):
    job = _post_import(as_admin).get_json()["job"]
    assert api.login("super@test.org").get(f"/jobs/{job['id']}").status_code == 200
    coordinator = api.login("coord@test.org")
    assert_error(coordinator.get(f"/jobs/{job['id']}"), 404)
    assert_error(coordinator.get(f"/jobs/{job['id']}/files/x.csv"), 404)
    assert_error(api.login("member@test.org").get(f"/jobs/{job['id']}"), 404)
    assert_error(as_admin.get("/jobs/999999"), 404)
    assert_error(api.get(f"/jobs/{job['id']}"), 401)


def test_the_web_process_only_enqueues(as_admin, tree, tmp_path, app):
    """With a real queue and no worker, the job waits, queued, on the store."""
    with queue.using(f"sqlite:///{tmp_path}/queue.db", tmp_path) as huey:
        response = _post_import(as_admin)
        assert response.status_code == 202
        job = response.get_json()["job"]
        assert job["status"] == "queued" and job["done"] == 0 and job["result"] is None
        assert huey.pending_count() == 1
        assert as_admin.get(response.headers["Location"].removeprefix("/api/v1")).get_json()["job"]["status"] == \
            "queued"
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.last_name == "Banda")) == 0
