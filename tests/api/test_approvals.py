"""``POST /api/v1/members/{id}/approve`` and ``/reject``: scope, rights, state, the reason, the mail.

Every answer is also checked against the OpenAPI document by the API client
(tests/api/conftest.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailMessage, Member
from app.services import rbac
from tests.api.conftest import assert_error


@pytest.fixture()
def waiting(tree, make_member):
    """Pending members in W1 (the coordinator's ward) and W4 (elsewhere), and an active one in W1."""
    return {
        "in": make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org", status="pending"),
        "out": make_member(tree["w4"], first_name="Bo", last_name="Phiri", email="bo@example.org", status="pending"),
        "active": make_member(tree["w1"], first_name="Cy", last_name="Mwale"),
    }


def _fresh(member: Member) -> Member:
    db.session.expire_all()
    return db.session.get(Member, member.id)


def test_approve_activates_the_member_and_queues_a_welcome(as_coord, waiting, staff):
    response = as_coord.post(f"/members/{waiting['in'].id}/approve")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["id"], body["status"]) == (waiting["in"].id, "active")
    assert _fresh(waiting["in"]).status == "active"
    mail = db.session.scalar(select(MailMessage).where(MailMessage.member_id == waiting["in"].id))
    assert mail.kind == "portal.welcome" and mail.to_address == "ada@example.org"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.approve"))
    assert entry.actor_id == staff["coordinator"].id


def test_outside_the_callers_area_is_404_and_nothing_changes(as_coord, waiting):
    assert_error(as_coord.post(f"/members/{waiting['out'].id}/approve"), 404)
    assert_error(as_coord.post(f"/members/{waiting['out'].id}/reject", json={"reason": "no"}), 404)
    assert_error(as_coord.post("/members/99999999/approve"), 404)
    assert _fresh(waiting["out"]).status == "pending" and _fresh(waiting["out"]).deleted_at is None


def test_without_the_right_it_is_403(api, as_member, tree, make_user, waiting):
    assert_error(as_member.post(f"/members/{waiting['in'].id}/approve"), 403)
    rbac.create_role(None, "reader_only", "", ["members.read"])
    make_user("reader@test.org", "reader_only", tree["w1"])
    reader = api.login("reader@test.org")
    body = assert_error(reader.post(f"/members/{waiting['in'].id}/approve"), 403)
    assert body["details"]["permission"] == "members.update"
    assert_error(api.post(f"/members/{waiting['in'].id}/approve"), 401)
    assert _fresh(waiting["in"]).status == "pending"


def test_a_member_who_is_not_pending_is_409(as_coord, waiting):
    body = assert_error(as_coord.post(f"/members/{waiting['active'].id}/approve"), 409)
    assert "not waiting for approval" in body["error"]
    assert_error(as_coord.post(f"/members/{waiting['active'].id}/reject", json={"reason": "x"}), 409)
    as_coord.post(f"/members/{waiting['in'].id}/approve")
    assert_error(as_coord.post(f"/members/{waiting['in'].id}/approve"), 409)  # approved already


@pytest.mark.parametrize("body", [{}, {"reason": "   "}, {"reason": 5}, {"reason": "x" * 1001}, {"why": "x"}])
def test_reject_needs_a_reason(as_coord, waiting, body):
    response = as_coord.post(f"/members/{waiting['in'].id}/reject", json=body)
    assert response.status_code in (400, 422)
    assert set(response.get_json()) == {"error", "details"}
    assert _fresh(waiting["in"]).deleted_at is None


def test_reject_withdraws_the_application_and_mails_the_reason(as_coord, waiting):
    response = as_coord.post(f"/members/{waiting['in'].id}/reject", json={"reason": "Not in this ward."})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == waiting["in"].id and body["rejection_reason"] == "Not in this ward."
    member = _fresh(waiting["in"])
    assert member.deleted_at is not None and member.rejection_reason == "Not in this ward."
    mail = db.session.scalar(select(MailMessage).where(MailMessage.kind == "portal.rejected"))
    assert mail.to_address == "ada@example.org" and "Not in this ward." in mail.body_text
    # Withdrawn: gone from the registry's answers.
    assert_error(as_coord.get(f"/members/{waiting['in'].id}"), 404)
    assert_error(as_coord.post(f"/members/{waiting['in'].id}/approve"), 404)


def test_an_optional_note_goes_into_the_status_history(as_coord, waiting):
    from app.models import MemberStatusChange

    response = as_coord.post(f"/members/{waiting['in'].id}/approve", json={"note": "Checked the ID card."})
    assert response.status_code == 200
    reasons = db.session.scalars(select(MemberStatusChange.reason)
                                 .where(MemberStatusChange.member_id == waiting["in"].id)).all()
    assert "Approved: Checked the ID card." in reasons
