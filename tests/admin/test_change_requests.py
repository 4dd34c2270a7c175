"""The console's request queues: profile change requests (approve / reject) and erasure requests (mark handled).

A ward coordinator sees the requests of their wards' members only (another
ward's answers 404); deciding needs ``members.update`` over the member (403
without it), handling an erasure ``members.delete``. Approving changes the
record through the member registry (its duplicate rules included); the
member gets a mail either way (read from a real SMTP server).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MemberChangeRequest
from app.services import change_requests, rbac
from tests.conftest import csrf_token_from, login

LIST, ERASURES = "/admin/change-requests/", "/admin/erasure-requests/"


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture()
def asks(tree, make_member, make_user, staff):
    """Ada (W1, the coordinator's ward) and Bo (W4) each ask for a change and for erasure."""
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")
    bo = make_member(tree["w4"], first_name="Bo", last_name="Zulu", email="bo@example.org")
    out = {}
    for member, login_email in ((ada, "ada@test.org"), (bo, "bo@test.org")):
        user = make_user(login_email, "member", member=member)
        out[member.first_name] = {
            "member": member, "user": user,
            "change": change_requests.request_change(user, {"last_name": member.last_name + "-New",
                                                            "date_of_birth": "1991-02-03"}, "please"),
            "erasure": change_requests.request_erasure(user, "leaving")[0],
        }
    db.session.commit()
    return out


def _post(client, url, data=None):
    token = csrf_token_from(text(client.get("/login")))
    return client.post(url, data={"csrf_token": token, **(data or {})})


def test_coordinator_sees_only_their_wards_requests(client, asks):
    login(client, "coord@test.org")
    page = text(client.get(LIST))
    assert "Ada Banda" in page and "Bo Zulu" not in page
    assert client.get(f"{LIST}{asks['Bo']['change'].id}").status_code == 404
    assert _post(client, f"{LIST}{asks['Bo']['change'].id}/approve").status_code == 404
    assert _post(client, f"{LIST}{asks['Bo']['change'].id}/reject", {"reason": "x"}).status_code == 404
    erasures = text(client.get(ERASURES))
    assert "Ada Banda" in erasures and "Bo Zulu" not in erasures
    assert client.get(f"{ERASURES}{asks['Bo']['erasure'].id}").status_code == 404


def test_admin_sees_all_and_members_are_kept_out(app, client, asks):
    login(client, "admin@test.org")
    page = text(client.get(LIST))
    assert "Ada Banda" in page and "Bo Zulu" in page
    client = app.test_client()
    login(client, "ada@test.org")
    assert client.get(LIST).status_code == 403
    assert client.get(ERASURES).status_code == 403


def test_the_request_page_shows_record_against_asked_for(client, asks):
    login(client, "coord@test.org")
    page = text(client.get(f"{LIST}{asks['Ada']['change'].id}"))
    assert "Banda" in page and "Banda-New" in page and "1991-02-03" in page and "please" in page
    assert 'id="approve-form"' in page and 'id="reject-form"' in page


def test_approve_changes_the_record_audits_and_mails_the_member(client, asks, smtp_mail):
    ada = asks["Ada"]
    login(client, "coord@test.org")
    response = _post(client, f"{LIST}{ada['change'].id}/approve", {"note": "Welcome back"})
    assert response.status_code == 302
    assert "Approved" in text(client.get(LIST)) and "No change requests are waiting" in text(client.get(LIST))
    db.session.expire_all()
    member = ada["member"]
    assert member.last_name == "Banda-New" and member.date_of_birth.isoformat() == "1991-02-03"
    req = db.session.get(MemberChangeRequest, ada["change"].id)
    assert req.status == "approved" and req.decided_by.email == "coord@test.org" and req.decided_at is not None
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"change_request.approve", "member.update"} <= actions
    message = smtp_mail.wait_for(1)[0]
    assert message["To"] == "ada@example.org" and message["Subject"] == "Your change request was approved"
    body = message.get_body(("plain",)).get_content()
    assert "Banda -> Banda-New" in body and "Welcome back" in body
    # Decided once: a second approval is refused.
    again = _post(client, f"{LIST}{ada['change'].id}/approve")
    assert again.status_code == 302 and "already been approved" in text(client.get(again.headers["Location"]))


def test_reject_needs_a_reason_and_tells_the_member(client, asks, smtp_mail):
    ada = asks["Ada"]
    login(client, "coord@test.org")
    missing = _post(client, f"{LIST}{ada['change'].id}/reject", {"reason": "  "})
    assert missing.status_code == 422 and "Reason is required" in text(missing)
    assert db.session.get(MemberChangeRequest, ada["change"].id).status == "pending"
    assert _post(client, f"{LIST}{ada['change'].id}/reject", {"reason": "Bring your ID card"}).status_code == 302
    db.session.expire_all()
    assert ada["member"].last_name == "Banda"
    req = db.session.get(MemberChangeRequest, ada["change"].id)
    assert (req.status, req.reason) == ("rejected", "Bring your ID card")
    message = smtp_mail.wait_for(1)[0]
    assert message["Subject"] == "Your change request was not approved"
    assert "Bring your ID card" in message.get_body(("plain",)).get_content()


def test_a_national_id_held_by_someone_else_refuses_the_approval(client, asks, tree, make_member, make_user):
    ada = asks["Ada"]
    change_requests.withdraw_change(ada["user"])
    req = change_requests.request_change(ada["user"], {"national_id": "777777/77/7"})
    make_member(tree["w1"], first_name="Cleo", last_name="Mumba", national_id="777777/77/7")  # since the request
    db.session.commit()
    login(client, "coord@test.org")
    response = _post(client, f"{LIST}{req.id}/approve")
    page = text(client.get(response.headers["Location"]))
    assert "Cannot approve: A member with this ID number already exists: Cleo Mumba" in page
    db.session.expire_all()
    assert ada["member"].national_id is None and db.session.get(MemberChangeRequest, req.id).status == "pending"


def test_a_ward_outside_the_approvers_area_refuses_the_approval(client, asks, tree):
    ada = asks["Ada"]
    change_requests.withdraw_change(ada["user"])
    req = change_requests.request_change(ada["user"], {"unit_id": tree["w4"].id})
    db.session.commit()
    login(client, "coord@test.org")
    response = _post(client, f"{LIST}{req.id}/approve")
    assert "Cannot approve: That unit does not exist or is outside your area." in \
        text(client.get(response.headers["Location"]))
    db.session.expire_all()
    assert ada["member"].unit_id == tree["w1"].id


def test_seeing_without_the_right_to_decide_is_403(client, asks, tree, make_user):
    reader = rbac.create_role(None, "ward_reader", "", ["members.read"])
    rbac.assign_role(None, make_user("reader@test.org"), reader, tree["w1"])
    db.session.commit()
    login(client, "reader@test.org")
    page = text(client.get(f"{LIST}{asks['Ada']['change'].id}"))
    assert 'id="no-decision"' in page and 'id="approve-form"' not in page
    assert _post(client, f"{LIST}{asks['Ada']['change'].id}/approve").status_code == 403
    assert _post(client, f"{LIST}{asks['Ada']['change'].id}/reject", {"reason": "x"}).status_code == 403
    assert db.session.get(MemberChangeRequest, asks["Ada"]["change"].id).status == "pending"


def test_erasure_requests_are_handled_with_a_note_by_those_who_may_delete(app, client, asks):
    ada = asks["Ada"]
    login(client, "coord@test.org")  # coordinators see them, but may not delete members
    page = text(client.get(f"{ERASURES}{ada['erasure'].id}"))
    assert "leaving" in page and 'id="no-handle"' in page
    assert _post(client, f"{ERASURES}{ada['erasure'].id}/handle", {"note": "done"}).status_code == 403
    client = app.test_client()
    login(client, "admin@test.org")
    missing = _post(client, f"{ERASURES}{ada['erasure'].id}/handle", {"note": ""})
    assert missing.status_code == 422 and "Note is required" in text(missing)
    done = _post(client, f"{ERASURES}{ada['erasure'].id}/handle", {"note": "Deleted the record; kept dues history"})
    assert done.status_code == 302
    pending = text(client.get(ERASURES))
    assert "Marked handled: the erasure request of Ada Banda." in pending
    assert f'data-request-id="{ada["erasure"].id}"' not in pending and "Bo Zulu" in pending
    db.session.expire_all()
    req = ada["erasure"]
    db.session.refresh(req)
    assert (req.status, req.note, req.handled_by.email) == ("handled", "Deleted the record; kept dues history",
                                                            "admin@test.org")
    handled = text(client.get(f"{ERASURES}?status=handled"))
    assert "Ada Banda" in handled
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "erasure_request.handle")) is not None
