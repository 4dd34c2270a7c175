"""GET /api/v1/members/export: the filtered list as CSV or XLSX, scoped and audited."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry
from tests.api.conftest import assert_error


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_export_with_the_list_filters(as_admin, tree, make_member):
    make_member(tree["w1"], first_name="Ann", last_name="Banda", status="active", phone="0977000201")
    make_member(tree["w2"], first_name="Ben", last_name="Banda", status="pending")
    make_member(tree["w4"], first_name="Cid", last_name="Zulu", status="active")
    rows = rows_of(as_admin.get("/members/export"))
    assert sorted(r["First name"] for r in rows) == ["Ann", "Ben", "Cid"]
    rows = rows_of(as_admin.get(f"/members/export?status=active&unit_id={tree['p1'].id}&columns=first_name,phone"))
    assert rows == [{"First name": "Ann", "Phone": "'+260977000201"}]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "members.export")
                              .order_by(AuditEntry.id.desc()))
    assert entry.changes["filter"] == {"q": "", "status": ["active"], "unit_id": tree["p1"].id}
    assert entry.changes["source"] == "api" and entry.unit_id == tree["p1"].id


def test_coordinator_exports_their_wards_only(as_coord, tree, make_member):
    make_member(tree["w1"], first_name="Mine")
    make_member(tree["w4"], first_name="Theirs")
    rows = rows_of(as_coord.get("/members/export"))
    assert [r["First name"] for r in rows] == ["Mine"]
    assert rows_of(as_coord.get(f"/members/export?unit_id={tree['w4'].id}")) == []


def test_xlsx_and_bad_parameters(as_admin, as_member, tree, make_member):
    make_member(tree["w1"])
    response = as_admin.get("/members/export?format=xlsx")
    assert response.status_code == 200 and response.get_data()[:2] == b"PK"
    assert_error(as_admin.get("/members/export?format=pdf"), 422, "format")
    assert_error(as_admin.get("/members/export?columns=password"), 422, "columns")
    assert_error(as_admin.get("/members/export?status=sleeping"), 422, "status")
    assert_error(as_member.get("/members/export"), 403)
