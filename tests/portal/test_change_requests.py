"""Asking for a change of name, date of birth, national ID or ward; asking to delete one's account.

The member's side (the portal); the staff's side is tests/admin/test_change_requests.py.
One pending change request at a time: a second is refused until the first is decided or withdrawn.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, ErasureRequest, Member, MemberChangeRequest
from app.services import change_requests
from app.services.errors import ServiceError
from tests.portal.conftest import post, text


def _ask(portal, member, **fields):
    data = {"first_name": member.first_name, "last_name": member.last_name, "other_names": member.other_names or "",
            "date_of_birth": member.date_of_birth.isoformat() if member.date_of_birth else "",
            "national_id": member.national_id or "", "unit_id": str(member.unit_id), "note": "", **fields}
    return post(portal, "/profile/changes", data)


def _requests(member) -> list[MemberChangeRequest]:
    return list(db.session.scalars(select(MemberChangeRequest).where(MemberChangeRequest.member_id == member.id)
                                   .order_by(MemberChangeRequest.id)))


def test_a_change_request_keeps_only_what_differs_and_shows_as_pending(portal, member, tree):
    response = _ask(portal, member, last_name="Mwansa-Banda", date_of_birth="1990-04-25",
                    unit_id=str(tree["w2"].id), note="Married; moved house")
    assert response.status_code == 302
    page = text(portal.get("/profile"))
    assert "Your change request has been sent." in page and "Change request pending" in page
    assert "Mwansa-Banda" in page and "Lukashya Ward 2 (W2)" in page
    assert 'id="change-form"' not in page and 'id="withdraw-change"' in page
    [req] = _requests(member)
    assert req.status == "pending" and req.note == "Married; moved house"
    assert req.fields == {"last_name": "Mwansa-Banda", "date_of_birth": "1990-04-25", "unit_id": tree["w2"].id}
    assert req.old_values == {"last_name": "Mwansa", "date_of_birth": None, "unit_id": tree["w1"].id}
    db.session.expire_all()
    assert (member.last_name, member.unit_id) == ("Mwansa", tree["w1"].id)  # nothing changed yet
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "change_request.create")) is not None


def test_every_bad_field_is_shown_at_once(portal, member):
    response = _ask(portal, member, first_name="", date_of_birth="25/04/1990", national_id="??", unit_id="999999")
    assert response.status_code == 422
    page = text(response)
    for message in ("First name is required", "Date of birth must be a date", "national ID number is 4-40",
                    "Choose one of the listed wards"):
        assert message in page, message
    assert _requests(member) == []


def test_nothing_to_change_is_said(portal, member):
    response = _ask(portal, member)
    assert response.status_code == 422 and "Nothing to change" in text(response)


def test_a_national_id_another_member_holds_is_refused_without_naming_them(portal, member, other):
    other.national_id = "555555/55/5"
    db.session.commit()
    response = _ask(portal, member, national_id="555555/55/5")
    assert response.status_code == 409
    page = text(response)
    assert "already exists" in page and "Bwalya" not in page and "Phiri" not in page
    assert _requests(member) == []


def test_one_pending_request_at_a_time_withdraw_then_ask_again(portal, member):
    assert _ask(portal, member, first_name="Chandaa").status_code == 302
    # The page shows no form while one is pending; a forged second POST is refused.
    second = _ask(portal, member, first_name="Chandra")
    assert second.status_code == 302 and "already have a change request waiting" in text(portal.get("/profile"))
    assert len(_requests(member)) == 1
    assert post(portal, "/profile/changes/withdraw").status_code == 302
    assert "Your change request has been withdrawn." in text(portal.get("/profile"))
    assert _ask(portal, member, first_name="Chandra").status_code == 302
    assert [r.status for r in _requests(member)] == ["withdrawn", "pending"]
    page = text(portal.get("/profile"))
    assert "Withdrawn" in page and "Chandra" in page


def test_withdrawing_nothing_says_so(portal, member):
    post(portal, "/profile/changes/withdraw")
    assert "no change request waiting" in text(portal.get("/profile"))


def test_only_requestable_fields_and_only_ones_own_record(portal, member, other):
    post(portal, "/profile/changes", {"first_name": "X", "last_name": "Y", "unit_id": str(member.unit_id),
                                      "status": "active", "member_id": str(other.id), "notes": "hi"})
    [req] = _requests(member)
    assert set(req.fields) == {"first_name", "last_name"}
    assert _requests(other) == []


# --- erasure ---------------------------------------------------------------------------------


def test_asking_to_delete_the_account_needs_a_confirmation_and_deletes_nothing(portal, member):
    page = text(portal.get("/profile/delete"))
    assert "Nothing is deleted now" in page and 'id="erasure-form"' in page
    unconfirmed = post(portal, "/profile/delete", {"reason": "Moving abroad"})
    assert unconfirmed.status_code == 422 and "Tick the box" in text(unconfirmed)
    assert db.session.scalar(select(func.count()).select_from(ErasureRequest)) == 0
    done = post(portal, "/profile/delete", {"confirm": "y", "reason": "Moving abroad"})
    assert done.status_code == 302
    page = text(portal.get("/profile"))
    assert "has been sent to staff" in page and 'id="erasure-pending"' in page and 'id="ask-delete"' not in page
    [req] = db.session.scalars(select(ErasureRequest)).all()
    assert (req.member_id, req.status, req.reason) == (member.id, "pending", "Moving abroad")
    db.session.expire_all()
    assert db.session.get(Member, member.id).deleted_at is None  # nothing deleted by the member alone
    # Asking again changes nothing: the one request stays pending.
    post(portal, "/profile/delete", {"confirm": "y"})
    assert db.session.scalar(select(func.count()).select_from(ErasureRequest)) == 1
    assert "already waiting" in text(portal.get("/profile"))
    assert 'id="erasure-pending"' in text(portal.get("/profile/delete"))


def test_two_racing_requests_cannot_both_be_pending(member, member_user, monkeypatch):
    """The partial unique index holds the rule when the service's own check is raced past."""
    change_requests.request_change(member_user, {"first_name": "Chandaa"})
    change_requests.request_erasure(member_user)
    monkeypatch.setattr(change_requests, "pending_change", lambda _member: None)  # as if the first were unseen
    with pytest.raises(ServiceError) as refused:
        change_requests.request_change(member_user, {"first_name": "Chandra"})
    assert refused.value.status == 409 and "already have a change request" in refused.value.message
    real_pending, calls = change_requests.pending_erasure, []

    def unseen_once(m):  # the first look misses the pending request, as in a race; the index catches it
        calls.append(m)
        return None if len(calls) == 1 else real_pending(m)

    monkeypatch.setattr(change_requests, "pending_erasure", unseen_once)
    req, created = change_requests.request_erasure(member_user)
    assert not created and req.status == "pending"
    assert db.session.scalar(select(func.count()).select_from(ErasureRequest)) == 1
    assert len(_requests(member)) == 1
