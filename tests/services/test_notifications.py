"""Notifications and mail preferences (issue 12): each staff action notifies once, opt-outs are respected,
one-click unsubscribe links work without sign-in (tampered ones do not), and every optional mail reaches a
real SMTP server (aiosmtpd) with its List-Unsubscribe headers; required kinds cannot be switched off."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import MailMessage, MemberChangeRequest, Notification
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import change_requests, joining
from app.services import events as event_service
from app.services import notifications as notes
from app.services.errors import NotFound, ServiceError


def _commit() -> None:
    db.session.commit()
    db.session.expire_all()


def _notes(member, kind: str | None = None) -> list[Notification]:
    stmt = select(Notification).where(Notification.member_id == member.id).order_by(Notification.id)
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.session.scalars(stmt))


@pytest.fixture()
def ada(tree, make_member):
    return make_member(tree["w1"], first_name="Ada", last_name="Banda", email="ada@example.org")


# --- each staff action creates one ---------------------------------------------------------


def test_approving_a_pending_member_notifies_them_once(tree, make_member, staff):
    pending = make_member(tree["w1"], status="pending", email="new@example.org")
    joining.approve(staff["admin"], pending)
    [note] = _notes(pending)
    assert (note.kind, note.title, note.read_at) == ("membership.approved", "Your membership is approved", None)
    assert pending.membership_number in note.message


def test_deciding_a_change_request_notifies_the_member(ada, staff):
    for decide, title in ((lambda r: change_requests.approve(staff["admin"], r), "Your change request was approved"),
                          (lambda r: change_requests.reject(staff["admin"], r, "No proof"),
                           "Your change request was not approved")):
        req = MemberChangeRequest(member=ada, fields={"first_name": "Adah"}, old_values={"first_name": ada.first_name},
                                  status="pending")
        db.session.add(req)
        db.session.flush()
        decide(req)
    first, second = _notes(ada, "request.decided")
    assert first.title == "Your change request was approved" and "First name" in first.message
    assert second.title == "Your change request was not approved" and "Reason: No proof" in second.message
    assert first.link == second.link == "/profile#changes"


def test_issuing_cards_notifies_each_holder_once_in_one_insert(tree, make_member, ada):
    others = [make_member(tree["w1"]) for _ in range(3)]
    card = card_service.issue_card(None, ada)
    cards = card_service.issue_cards(None, others)
    [note] = _notes(ada, "card.issued")
    assert note.title == f"Your membership card {card.card_number} was issued" and note.link == "/card"
    assert f"{card.expires_on:%d %B %Y}" in note.message
    for member, issued in zip(others, cards):
        [note] = _notes(member, "card.issued")
        assert issued.card_number in note.title


def test_revoking_a_card_sends_the_required_notice(ada):
    card = card_service.issue_card(None, ada)
    card_service.revoke_card(None, card, "Fraud")
    [note] = _notes(ada, "card.revoked")
    assert note.title == f"Your membership card {card.card_number} was revoked"
    assert "card.revoked" in notes.REQUIRED_KINDS


def test_a_place_from_the_waiting_list_notifies_the_member(app, tree, make_member, ada):
    first = make_member(tree["w1"])
    start = utcnow() + timedelta(days=3)
    event = event_service.create_event(None, {"title": "Ward meeting", "start_at": start,
                                              "end_at": start + timedelta(hours=2), "unit_id": tree["w1"].id,
                                              "status": "upcoming", "capacity": 1})
    held, _created = event_service.register(None, event, first)
    event_service.register(None, event, ada)
    assert _notes(ada) == []
    event_service.cancel_registration(None, held)
    [note] = _notes(ada, "event.promoted")
    assert note.title == "You have a place at Ward meeting"
    assert note.link == f"{app.config['PUBLIC_URL']}/events/{event.id}"


def test_notify_refuses_unknown_kinds_and_links_to_other_sites(ada):
    with pytest.raises(ValueError):
        notes.notify(ada, "no.such.kind", "x")
    with pytest.raises(ValueError):
        notes.notify(ada, "card.issued", "x", link="https://evil.example/")
    with pytest.raises(ValueError):
        notes.notify(ada, "card.issued", "x", link="//evil.example/")


# --- reading, marking read, IDOR -----------------------------------------------------------


def test_unread_count_mark_read_and_mark_all_read(ada, tree, make_member):
    other = make_member(tree["w1"])
    a, b, _c = (notes.notify(ada, "card.issued", f"N{i}") for i in range(3))
    notes.notify(other, "card.issued", "Theirs")
    assert notes.unread_count(ada) == 3 and notes.unread_count(other) == 1
    notes.mark_read(a)
    first_read = a.read_at
    notes.mark_read(a)
    assert a.read_at == first_read and notes.unread_count(ada) == 2
    assert [n.title for n in db.session.scalars(notes.for_member(ada, unread_only=True))] == ["N2", "N1"]
    assert notes.mark_all_read(ada) == 2
    assert notes.unread_count(ada) == 0 and notes.unread_count(other) == 1  # theirs untouched
    items, total = notes.page(ada, 0, 2)
    assert total == 3 and [n.title for n in items] == ["N2", "N1"]
    assert b.id in {n.id for n in notes.page(ada, 2, 2)[0]} | {items[1].id}


def test_another_members_notification_is_not_found(ada, tree, make_member):
    theirs = notes.notify(make_member(tree["w1"]), "card.issued", "Theirs")
    for bad in (theirs.id, "x", -1, 10**30, None):
        with pytest.raises(NotFound):
            notes.load_own(ada, bad)
    assert notes.load_own(ada, notes.notify(ada, "card.issued", "Mine").id).title == "Mine"


# --- preferences ---------------------------------------------------------------------------


def test_preferences_default_on_and_optional_kinds_can_be_switched_off(ada):
    assert all(notes.wants_email(ada, kind) for kind in notes.KINDS)
    notes.set_preferences(ada, ["card.issued"])
    assert notes.wants_email(ada, "card.issued")
    assert not notes.wants_email(ada, "reminder.renewal") and not notes.wants_email(ada, "event.promoted")
    by_kind = {p.kind: p for p in notes.preferences(ada)}
    assert by_kind["card.issued"].email and not by_kind["reminder.event"].email
    notes.set_preferences(ada, notes.OPTIONAL_KINDS)
    assert all(notes.wants_email(ada, kind) for kind in notes.KINDS)


def test_required_kinds_cannot_be_switched_off(ada):
    assert notes.REQUIRED_KINDS == {"card.revoked", "account.security"}
    notes.set_preferences(ada, [])  # nothing ticked: every optional kind off, required ones on
    assert notes.wants_email(ada, "card.revoked") and notes.wants_email(ada, "account.security")
    assert all(p.email for p in notes.preferences(ada) if p.required)
    with pytest.raises(ServiceError, match="cannot be switched off"):
        notes.set_email(ada, "card.revoked", False)
    assert notes.wants_email(ada, "card.revoked")
    with pytest.raises(ValueError):
        notes.unsubscribe_url(ada, "account.security")  # required mail carries no unsubscribe link
    with pytest.raises(ServiceError):
        notes.set_preferences(ada, ["no.such.kind"])


# --- unsubscribe links ---------------------------------------------------------------------


def test_an_unsubscribe_link_is_absolute_signed_and_switches_off_that_kind_only(app, ada):
    url = notes.unsubscribe_url(ada, "reminder.renewal")
    assert url.startswith(f"{app.config['PUBLIC_URL']}/unsubscribe/")
    token = urlsplit(url).path.rsplit("/", 1)[1]
    target = notes.unsubscribe(token)
    assert (target.member, target.kind) == (ada, "reminder.renewal")
    assert not notes.wants_email(ada, "reminder.renewal") and notes.wants_email(ada, "reminder.event")
    notes.unsubscribe(token)  # following it again is harmless
    assert not notes.wants_email(ada, "reminder.renewal")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # a changed signature
    lambda t: t.split(".")[0],  # the payload alone
    lambda t: "",
    lambda t: "x" * 500,
])
def test_a_tampered_unsubscribe_token_is_refused(ada, mangle):
    token = notes.unsubscribe_token(ada, "reminder.renewal")
    with pytest.raises(ServiceError) as caught:
        notes.unsubscribe(mangle(token))
    assert caught.value.status == 400
    assert notes.wants_email(ada, "reminder.renewal")


def test_a_token_signed_for_another_purpose_is_refused(app, ada):
    from itsdangerous import URLSafeSerializer

    forged = URLSafeSerializer(app.config["SECRET_KEY"], salt="another.purpose").dumps([ada.id, "reminder.renewal"])
    with pytest.raises(ServiceError):
        notes.unsubscribe(forged)
    required = URLSafeSerializer(app.config["SECRET_KEY"], salt=notes.UNSUBSCRIBE_SALT).dumps([ada.id, "card.revoked"])
    with pytest.raises(ServiceError):
        notes.unsubscribe(required)  # even correctly signed, a required kind cannot be unsubscribed


# --- optional mail through a real SMTP server ------------------------------------------------


def test_an_optional_mail_carries_list_unsubscribe_headers_and_a_footer_link(app, smtp_mail, ada, staff):
    req = MemberChangeRequest(member=ada, fields={"first_name": "Adah"}, old_values={"first_name": "Ada"},
                              status="pending")
    db.session.add(req)
    db.session.flush()
    change_requests.reject(staff["admin"], req, "No proof")
    url = notes.unsubscribe_url(ada, "request.decided")
    _commit()

    [received] = smtp_mail.wait_for(1)
    assert received["List-Unsubscribe"].strip() == f"<{url}>"  # folded: the URL is long
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in received.get_body(("plain",)).get_content()
    assert f'href="{url}"' in received.get_body(("html",)).get_content()


def test_a_required_or_plain_mail_has_no_list_unsubscribe_header(app, smtp_mail, ada):
    from app.services import mail

    mail.send_test(None, "ops@example.org")
    _commit()
    [received] = smtp_mail.wait_for(1)
    assert received["List-Unsubscribe"] is None and "unsubscribe" not in received.as_string().lower()


def test_an_opted_out_member_gets_no_mail_and_the_outbox_says_why(app, smtp_mail, ada, staff):
    notes.set_email(ada, "request.decided", False)
    req = MemberChangeRequest(member=ada, fields={"first_name": "Adah"}, old_values={"first_name": "Ada"},
                              status="pending")
    db.session.add(req)
    db.session.flush()
    change_requests.reject(staff["admin"], req, "No proof")
    _commit()
    row = db.session.scalar(select(MailMessage).where(MailMessage.kind == "profile.change-rejected"))
    assert (row.status, row.reason) == ("suppressed", "Opted out.")
    assert smtp_mail.messages == []
    assert len(_notes(ada, "request.decided")) == 1  # the portal still tells them


def test_following_the_link_from_a_delivered_mail_stops_the_next_one(app, client, smtp_mail, ada, staff):
    def reject_one():
        req = MemberChangeRequest(member=ada, fields={"first_name": "Adah"}, old_values={"first_name": "Ada"},
                                  status="pending")
        db.session.add(req)
        db.session.flush()
        change_requests.reject(staff["admin"], req, "No proof")
        _commit()

    reject_one()
    [received] = smtp_mail.wait_for(1)
    link = received["List-Unsubscribe"].strip().strip("<>")
    # The mail program's RFC 8058 one-click POST: no session, no CSRF token.
    response = client.post(urlsplit(link).path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code in (200, 204)
    reject_one()
    assert len(smtp_mail.messages) == 1
    assert db.session.scalar(select(func.count()).select_from(MailMessage)
                             .where(MailMessage.status == "suppressed")) == 1
