"""Console "Pending approvals": the queue is scoped, approve one or many, turn down with a reason (mailed).

A ward coordinator of W1 sees and decides only the pending members of W1:
another ward's pending member is not listed, and its approve/reject URLs
answer 404 as if it did not exist. Mail goes through a real SMTP server.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Member, MemberStatusChange, User
from app.services import joining
from tests.conftest import csrf_token_from, login

LIST = "/admin/approvals/"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _listed(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-member-id="(\d+)">', html)}


@pytest.fixture()
def pending(tree, make_member, make_user):
    """Pending members: two in W1 (one who joined online, with a verified address), one in W2, one in W4."""
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org", status="pending")
    ada.email_verified_at = ada.created_at
    make_user("ada@example.org", "member", member=ada)
    ben = make_member(tree["w1"], first_name="Ben", last_name="Mulenga", email="ben@example.org", status="pending")
    make_user("ben@example.org", "member", member=ben)
    cleo = make_member(tree["w2"], first_name="Cleo", last_name="Tembo", email="cleo@example.org", status="pending")
    dan = make_member(tree["w4"], first_name="Dan", last_name="Sakala", email="dan@example.org", status="pending")
    active = make_member(tree["w1"], first_name="Eve", last_name="Kunda", email="eve@example.org")
    db.session.commit()
    return {"ada": ada, "ben": ben, "cleo": cleo, "dan": dan, "active": active}


def _csrf(client) -> str:
    return csrf_token_from(_text(client.get(LIST)))


def _status(member: Member) -> tuple[str, bool]:
    db.session.expire_all()
    row = db.session.get(Member, member.id)
    return row.status, row.deleted_at is not None


def test_a_coordinator_sees_only_their_wards_pending_members(client, staff, pending):
    login(client, "coord@test.org")
    page = _text(client.get(LIST))
    assert _listed(page) == {pending["ada"].id, pending["ben"].id}
    assert "Tembo" not in page and "Sakala" not in page and "Kunda" not in page
    assert 'data-verified="yes"' in page and 'data-verified="no"' in page
    assert "2 waiting" in page


def test_a_global_admin_sees_them_all_and_search_narrows(client, staff, pending):
    login(client, "admin@test.org")
    assert _listed(_text(client.get(LIST))) == {pending[k].id for k in ("ada", "ben", "cleo", "dan")}
    assert _listed(_text(client.get(LIST + "?q=tembo"))) == {pending["cleo"].id}
    assert _listed(_text(client.get(LIST + "?q=dan@example.org"))) == {pending["dan"].id}
    assert "Nobody waiting matches" in _text(client.get(LIST + "?q=nobody"))


def test_the_queue_pages(client, staff, tree, make_member, monkeypatch):
    from app.admin import approvals

    monkeypatch.setattr(approvals, "PAGE_SIZE", 2)
    ids = [make_member(tree["w1"], status="pending").id for _ in range(3)]
    db.session.commit()
    login(client, "coord@test.org")
    first, second = _text(client.get(LIST)), _text(client.get(LIST + "?page=1"))
    assert _listed(first) == set(ids[:2]) and _listed(second) == {ids[2]}  # oldest first
    assert "Page 1 of 2" in first
    assert "past the end" in _text(client.get(LIST + "?page=5"))


def test_approving_activates_mails_a_welcome_and_is_audited(client, staff, pending, smtp_mail):
    login(client, "coord@test.org")
    response = client.post(f"/admin/approvals/{pending['ada'].id}/approve", data={"csrf_token": _csrf(client)})
    assert response.status_code == 302
    assert "Approved Ada Banda" in _text(client.get(LIST))
    assert _status(pending["ada"]) == ("active", False)
    change = db.session.scalar(select(MemberStatusChange).where(MemberStatusChange.member_id == pending["ada"].id,
                                                                MemberStatusChange.to_status == "active"))
    assert change.reason == "Approved" and change.actor_id == staff["coordinator"].id
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.approve")).actor_id == \
        staff["coordinator"].id
    [welcome] = smtp_mail.wait_for(1)
    assert welcome["To"] == "ada@example.org" and welcome["Subject"].startswith("Welcome to")
    body = welcome.get_body(("plain",)).get_content()
    assert pending["ada"].membership_number in body and "/login" in body


def test_another_wards_member_answers_404_and_is_untouched(client, staff, pending):
    login(client, "coord@test.org")
    token = _csrf(client)
    for key in ("cleo", "dan"):
        member_id = pending[key].id
        assert client.post(f"/admin/approvals/{member_id}/approve", data={"csrf_token": token}).status_code == 404
        assert client.get(f"/admin/approvals/{member_id}/reject").status_code == 404
        assert client.post(f"/admin/approvals/{member_id}/reject",
                           data={"csrf_token": token, "reason": "x"}).status_code == 404
        assert _status(pending[key]) == ("pending", False)


def test_a_member_who_is_not_pending_is_not_approved_again(client, staff, pending):
    login(client, "coord@test.org")
    response = client.post(f"/admin/approvals/{pending['active'].id}/approve", data={"csrf_token": _csrf(client)},
                           follow_redirects=True)
    assert "is not waiting for approval" in _text(response)
    assert _status(pending["active"]) == ("active", False)


def test_bulk_approve_takes_only_the_pending_members_in_scope(client, staff, pending, smtp_mail):
    login(client, "coord@test.org")
    ids = [pending[k].id for k in ("ada", "ben", "cleo", "dan", "active")] + ["junk", "99999999999999999999"]
    response = client.post("/admin/approvals/approve", data={"csrf_token": _csrf(client), "ids": ids},
                           follow_redirects=True)
    page = _text(response)
    assert "Approved 2 member(s)" in page and "5 selected row(s) were not waiting for your approval" in page
    assert [_status(pending[k])[0] for k in ("ada", "ben", "cleo", "dan")] == ["active", "active", "pending",
                                                                                "pending"]
    assert sorted(m["To"] for m in smtp_mail.wait_for(2)) == ["ada@example.org", "ben@example.org"]


def test_bulk_approve_needs_the_csrf_token(client, staff, pending):
    login(client, "coord@test.org")
    response = client.post("/admin/approvals/approve", data={"ids": [pending["ada"].id]})
    assert response.status_code == 400
    assert _status(pending["ada"]) == ("pending", False)


def test_rejecting_needs_a_reason_then_mails_it_and_withdraws_the_application(client, staff, pending, smtp_mail):
    login(client, "coord@test.org")
    url = f"/admin/approvals/{pending['ben'].id}/reject"
    page = _text(client.get(url))
    assert "Turn down Ben Mulenga" in page and 'data-confirm="Turn down Ben Mulenga?"' in page
    token = csrf_token_from(page)
    missing = client.post(url, data={"csrf_token": token, "reason": "  "})
    assert missing.status_code == 422 and "Give the reason" in _text(missing)
    assert _status(pending["ben"]) == ("pending", False)

    done = client.post(url, data={"csrf_token": token, "reason": "We could not confirm your <ward> address."})
    assert done.status_code == 302
    assert _status(pending["ben"]) == ("pending", True)  # withdrawn from the registry
    row = db.session.get(Member, pending["ben"].id)
    assert row.rejection_reason == "We could not confirm your <ward> address."
    login_row = db.session.scalar(select(User).where(User.member_id == row.id))
    assert not login_row.active
    assert pending["ben"].id not in _listed(_text(client.get(LIST)))
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.reject"))
    assert entry.changes["reason"] == "We could not confirm your <ward> address."
    [mail] = smtp_mail.wait_for(1)
    assert mail["To"] == "ben@example.org"
    assert "We could not confirm your <ward> address." in mail.get_body(("plain",)).get_content()
    assert "We could not confirm your &lt;ward&gt; address." in mail.get_body(("html",)).get_content()
    # Turned down once: it is gone (404), not turned down twice.
    assert client.post(url, data={"csrf_token": token, "reason": "again"}).status_code == 404


def test_staff_without_members_update_cannot_open_the_queue(client, tree, make_user, pending):
    from app.services import rbac

    rbac.create_role(None, "reader_only", "", ["members.read"])
    make_user("reader@test.org", "reader_only", tree["w1"])
    db.session.commit()
    login(client, "reader@test.org")
    assert client.get(LIST).status_code == 403


def test_the_service_queue_is_the_scoped_one(app, staff, pending):
    """``joining.pending_members`` goes through app.security.scoped: the console and the API agree."""
    rows = db.session.scalars(joining.pending_members(staff["coordinator"])).all()
    assert {m.id for m in rows} == {pending["ada"].id, pending["ben"].id}
    assert db.session.scalars(joining.pending_members(staff["member"])).all() == []
