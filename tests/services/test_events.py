"""Event rules: validation, scope, capacity and the waiting list, attendance, no-shows,
door check-in (rules, walk-ins, every rejection reason, nonces) and attachments."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import date, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Event, EventCheckin, EventCheckinNonce, EventRegistration
from app.models.base import utcnow
from app.services import card_keys, cards
from app.services import events as ev
from app.services import members as member_service
from app.services.errors import ServiceError

HOUR = timedelta(hours=1)


def make_event(actor, unit, **fields) -> Event:
    """A published event that started an hour ago and ends in three hours (check-in open)."""
    now = utcnow()
    data = {"title": "Ward meeting", "start_at": now - HOUR, "end_at": now + 3 * HOUR, "unit_id": unit.id,
            "status": "upcoming"}
    data.update(fields)
    return ev.create_event(actor, data)


@pytest.fixture()
def event(ctx, tree, staff):
    return make_event(staff["coordinator"], tree["w1"])


def checkins(event) -> int:
    return db.session.scalar(select(func.count()).select_from(EventCheckin).where(EventCheckin.event_id == event.id))


def reg_status(event, member) -> str | None:
    reg = ev.registration_for(event, member)
    return reg.status if reg else None


# --- events -------------------------------------------------------------------------------


def test_create_validates_dates_and_fields(ctx, tree, staff):
    coord, w1 = staff["coordinator"], tree["w1"]
    start = datetime(2031, 5, 1, 9, 0, tzinfo=timezone.utc)
    base = {"title": "Rally", "start_at": start, "end_at": start + 2 * HOUR, "unit_id": w1.id}
    with pytest.raises(ServiceError, match="end must be after the start") as err:
        ev.create_event(coord, {**base, "end_at": start})
    assert err.value.field == "end_at"
    with pytest.raises(ServiceError, match="deadline must be before the start") as err:
        ev.create_event(coord, {**base, "registration_deadline": start + HOUR})
    assert err.value.field == "registration_deadline"
    with pytest.raises(ServiceError, match="31 days"):
        ev.create_event(coord, {**base, "end_at": start + timedelta(days=40)})
    with pytest.raises(ServiceError, match="type must be one of"):
        ev.create_event(coord, {**base, "event_type": "party"})
    with pytest.raises(ServiceError, match="check-in rule"):
        ev.create_event(coord, {**base, "checkin_rule": "twice"})
    with pytest.raises(ServiceError, match="Capacity"):
        ev.create_event(coord, {**base, "capacity": 0})
    with pytest.raises(ServiceError, match="Title is required"):
        ev.create_event(coord, {**base, "title": "  "})
    with pytest.raises(ServiceError, match="date and time"):
        ev.create_event(coord, {**base, "start_at": "next tuesday"})
    with pytest.raises(ServiceError, match="follow the dates"):
        ev.create_event(coord, {**base, "status": "ongoing"})

    event = ev.create_event(coord, {**base, "start_at": "2031-05-01T09:00:00Z", "end_at": "2031-05-01T11:00",
                                    "registration_deadline": start - timedelta(days=1), "capacity": "50"})
    assert event.start_at == start and event.end_at == start + 2 * HOUR
    assert event.capacity == 50 and event.status == "draft" and event.checkin_rule == "once"
    assert event.registration_required is True and event.walk_ins_allowed is False
    assert event.created_by_id == coord.id
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.create"))
    assert entry.unit_id == w1.id and entry.changes["title"]["after"] == "Rally"


def test_scope_of_creation_and_moving(ctx, tree, staff):
    coord = staff["coordinator"]
    with pytest.raises(ServiceError, match="outside your area") as err:
        make_event(coord, tree["w4"])
    assert err.value.field == "unit_id"
    event = make_event(coord, tree["w1"])
    with pytest.raises(ServiceError, match="outside your area"):
        ev.update_event(coord, event, {"unit_id": tree["w3"].id})
    ev.update_event(staff["admin"], event, {"unit_id": tree["w3"].id})
    assert event.unit_id == tree["w3"].id


def test_status_follows_the_clock_unless_draft_or_cancelled(ctx, tree, staff):
    event = make_event(staff["admin"], tree["w1"])
    now = utcnow()
    assert event.status_at(now - 2 * HOUR) == "upcoming"
    assert event.status_at(now) == "ongoing"
    assert event.status_at(now + 4 * HOUR) == "completed"
    ev.set_event_status(staff["admin"], event, "cancelled")
    assert event.status_at(now) == "cancelled"
    ev.set_event_status(staff["admin"], event, "draft")
    assert event.current_status == "draft"
    # Sending back the status read (ongoing) is accepted and changes nothing.
    ev.set_event_status(staff["admin"], event, "upcoming")
    ev.update_event(staff["admin"], event, {"status": "ongoing"})
    assert event.status == "upcoming"


def test_visibility_staff_by_scope_members_by_their_units(ctx, tree, staff, make_member, make_user):
    in_w1 = make_event(staff["admin"], tree["w1"])
    in_p1 = make_event(staff["admin"], tree["p1"])
    in_w4 = make_event(staff["admin"], tree["w4"])
    draft_w1 = make_event(staff["admin"], tree["w1"], status="draft")
    visible = lambda user: set(db.session.scalars(ev.visible_events(user).with_only_columns(Event.id)))  # noqa: E731
    assert visible(staff["coordinator"]) == {in_w1.id, draft_w1.id}
    assert visible(staff["admin"]) == {in_w1.id, in_p1.id, in_w4.id, draft_w1.id}
    member_user = make_user("m1@test.org", "member", member=make_member(tree["w1"]))
    assert visible(member_user) == {in_w1.id, in_p1.id}  # their ward and above; drafts hidden
    assert visible(staff["member"]) == set()  # a member login without a member sees nothing


# --- registration, capacity, waiting list --------------------------------------------------


def test_capacity_waitlist_and_promotion_in_order(event, staff, tree, make_member):
    coord = staff["coordinator"]
    ev.update_event(coord, event, {"capacity": 2})
    a, b, c, d = (make_member(tree["w1"]) for _ in range(4))
    assert ev.register(coord, event, a)[0].status == "registered"
    assert ev.register(coord, event, b)[0].status == "registered"
    reg_c, created = ev.register(coord, event, c)
    assert (reg_c.status, created) == ("waitlisted", True)
    ev.register(coord, event, d)
    assert reg_status(event, d) == "waitlisted"
    # Registering again changes nothing.
    assert ev.register(coord, event, a) == (ev.registration_for(event, a), False)

    promoted = ev.cancel_registration(coord, ev.registration_for(event, a))
    assert [r.member_id for r in promoted] == [c.id]  # first come, first served
    assert reg_status(event, a) == "cancelled" and reg_status(event, c) == "registered"
    assert reg_status(event, d) == "waitlisted"
    # Cancelling a waitlisted registration frees no place.
    assert ev.cancel_registration(coord, ev.registration_for(event, d)) == []
    # Raising the capacity promotes the waiting list.
    e = make_member(tree["w1"])
    ev.register(coord, event, e)
    assert reg_status(event, e) == "waitlisted"
    ev.update_event(coord, event, {"capacity": 5})
    assert reg_status(event, e) == "registered"
    # A cancelled member registering again goes to the end of the line.
    ev.update_event(coord, event, {"capacity": 3})
    ev.register(coord, event, a)
    assert reg_status(event, a) == "waitlisted"
    figures = ev.counts(event)
    assert figures["registered"] == 3 and figures["waitlisted"] == 1 and figures["places_left"] == 0


def test_registration_rules(event, staff, tree, make_member):
    coord = staff["coordinator"]
    outsider = make_member(tree["w3"])
    with pytest.raises(ServiceError, match="not a member of Lukashya Ward 1"):
        ev.register(staff["admin"], event, outsider)
    suspended = make_member(tree["w1"])
    member_service.change_status(None, suspended, "suspended", "test")
    with pytest.raises(ServiceError, match="suspended"):
        ev.register(coord, event, suspended)
    member = make_member(tree["w1"])
    # Members registering themselves: deadline applies, drafts are closed; staff may register late.
    ev.update_event(coord, event, {"registration_deadline": event.start_at - HOUR})
    with pytest.raises(ServiceError, match="closed"):
        ev.register(None, event, member, source="self")
    assert ev.register(coord, event, member)[0].status == "registered"
    ev.set_event_status(coord, event, "cancelled")
    with pytest.raises(ServiceError, match="cancelled") as err:
        ev.register(coord, event, make_member(tree["w1"]))
    assert err.value.status == 409
    past = make_event(coord, tree["w1"], start_at=utcnow() - 5 * HOUR, end_at=utcnow() - 4 * HOUR)
    with pytest.raises(ServiceError, match="over"):
        ev.register(coord, past, member)


def test_manual_attendance_and_no_shows(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    event = make_event(coord, tree["w1"])
    came, absent, waiting = (make_member(tree["w1"]) for _ in range(3))
    ev.register(coord, event, came)
    ev.register(coord, event, absent)
    ev.update_event(coord, event, {"capacity": 2})
    ev.register(coord, event, waiting)
    reg = ev.set_attendance(coord, event, came, "attended", gate="Paper list")
    assert reg.status == "attended" and reg.checkin_gate == "Paper list" and checkins(event) == 1
    with pytest.raises(ServiceError, match="attended"):
        ev.cancel_registration(coord, reg)
    # A later scan of the same member is a duplicate.
    answer = ev.check_in(coord, event, member_id=came.id)
    assert answer["result"] == "already_checked_in"
    with pytest.raises(ServiceError, match="not been|once the event is over"):
        ev.mark_no_shows(coord, event)
    later = event.end_at + HOUR
    assert ev.mark_no_shows(coord, event, now=later) == 1
    assert reg_status(event, absent) == "no_show"
    assert reg_status(event, waiting) == "waitlisted"  # never had a place
    assert ev.mark_no_shows(coord, event, now=later) == 0  # idempotent
    # Undo attendance.
    ev.set_attendance(coord, event, came, "registered")
    assert reg_status(event, came) == "registered" and checkins(event) == 0


def test_no_show_job_covers_all_finished_events(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    now = utcnow()
    done = make_event(coord, tree["w1"], start_at=now - 5 * HOUR, end_at=now - 4 * HOUR)
    running = make_event(coord, tree["w1"])
    m = make_member(tree["w1"])
    # Registered while the event was on.
    db.session.add(EventRegistration(event_id=done.id, member_id=m.id, status="registered"))
    ev.register(coord, running, m)
    assert ev.mark_no_shows(None) == 1
    assert reg_status(done, m) == "no_show" and reg_status(running, m) == "registered"


# --- check-in: rules ------------------------------------------------------------------------


def test_once_rule_admits_once(event, staff, tree, make_member):
    coord = staff["coordinator"]
    m = make_member(tree["w1"])
    ev.register(coord, event, m)
    first = ev.check_in(coord, event, member_id=m.id, gate="North")
    assert first["result"] == "admitted" and first["reason"] is None
    assert first["member"]["membership_number"] == m.membership_number
    assert "phone" not in first["member"]
    second = ev.check_in(coord, event, member_id=m.id, gate="South", now=utcnow() + 2 * HOUR)
    assert second["result"] == "already_checked_in"
    assert second["first_gate"] == "North" and second["first_checked_in_at"] == first["checked_in_at"]
    reg = ev.registration_for(event, m)
    assert reg.status == "attended" and reg.checkin_gate == "North" and reg.checked_in_by_id == coord.id
    assert checkins(event) == 1


def test_once_per_day_rule(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    start = utcnow().replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)
    event = make_event(coord, tree["w1"], start_at=start, end_at=start + timedelta(days=3),
                       checkin_rule="once_per_day")
    m = make_member(tree["w1"])
    ev.register(coord, event, m)
    day1 = start + 2 * HOUR
    assert ev.check_in(coord, event, member_id=m.id, now=day1)["result"] == "admitted"
    assert ev.check_in(coord, event, member_id=m.id, now=day1 + 3 * HOUR)["result"] == "already_checked_in"
    assert ev.check_in(coord, event, member_id=m.id, now=day1 + timedelta(days=1))["result"] == "admitted"
    assert checkins(event) == 2
    assert ev.registration_for(event, m).checked_in_at == day1  # the first attendance is kept


def test_once_per_day_counts_days_in_the_organisation_time_zone(app, tree, staff, make_member):
    coord = staff["coordinator"]
    start = datetime(2030, 3, 1, 12, 0, tzinfo=timezone.utc)
    event = make_event(coord, tree["w1"], start_at=start, end_at=start + timedelta(days=2),
                       checkin_rule="once_per_day")
    m = make_member(tree["w1"])
    ev.register(coord, event, m)
    app.config["TIMEZONE"] = "Africa/Lusaka"  # UTC+2: 22:30 UTC is already the next day there
    try:
        assert ev.check_in(coord, event, member_id=m.id, now=start + timedelta(hours=8))["result"] == "admitted"
        late = datetime(2030, 3, 1, 22, 30, tzinfo=timezone.utc)
        assert ev.check_in(coord, event, member_id=m.id, now=late)["result"] == "admitted"
    finally:
        app.config["TIMEZONE"] = "UTC"


def test_multiple_entries_rule(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    event = make_event(coord, tree["w1"], checkin_rule="multiple")
    m = make_member(tree["w1"])
    ev.register(coord, event, m)
    t = utcnow()
    assert ev.check_in(coord, event, member_id=m.id, gate="A", now=t)["result"] == "admitted"
    # A double scan within the minute is the same entry.
    again = ev.check_in(coord, event, member_id=m.id, gate="B", now=t + timedelta(seconds=20))
    assert again["result"] == "already_checked_in" and again["first_gate"] == "A"
    assert ev.check_in(coord, event, member_id=m.id, gate="B", now=t + timedelta(minutes=5))["result"] == "admitted"
    assert checkins(event) == 2
    assert ev.counts(event)["attended"] == 1  # one person, two entries


def test_walk_ins(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    closed = make_event(coord, tree["w1"])
    stranger = make_member(tree["w1"])
    refused = ev.check_in(coord, closed, member_id=stranger.id)
    assert (refused["result"], refused["reason"]) == ("rejected", "not_registered")
    assert refused["member"]["id"] == stranger.id
    assert ev.registration_for(closed, stranger) is None

    walk_in = make_event(coord, tree["w1"], walk_ins_allowed=True, capacity=1)
    answer = ev.check_in(coord, walk_in, member_id=stranger.id, gate="Door")
    assert answer["result"] == "admitted" and answer["walk_in"] is True
    reg = ev.registration_for(walk_in, stranger)
    assert reg.status == "attended" and reg.source == "walk_in"
    # Full: the next walk-in is refused.
    full = ev.check_in(coord, walk_in, member_id=make_member(tree["w1"]).id)
    assert (full["result"], full["reason"]) == ("rejected", "event_full")

    # An open event (no registration needed) admits members of its area.
    open_event = make_event(staff["admin"], tree["c1"], registration_required=False)
    assert ev.check_in(staff["admin"], open_event, member_id=make_member(tree["w2"]).id)["result"] == "admitted"


def test_waitlisted_member_at_the_door(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    event = make_event(coord, tree["w1"], capacity=1)
    first, second = make_member(tree["w1"]), make_member(tree["w1"])
    ev.register(coord, event, first)
    ev.register(coord, event, second)
    answer = ev.check_in(coord, event, member_id=second.id)
    assert (answer["result"], answer["reason"]) == ("rejected", "waitlisted")
    assert ev.check_in(coord, event, member_id=first.id)["result"] == "admitted"


# --- check-in: rejection reasons ----------------------------------------------------------


def _card(member, **changes):
    card = cards.issue_card(None, member)
    for key, value in changes.items():
        setattr(card, key, value)
    db.session.flush()
    return card


def test_cards_valid_expired_suspended_revoked(event, staff, tree, make_member):
    coord = staff["coordinator"]
    ok, old, paused, gone = (make_member(tree["w1"]) for _ in range(4))
    for m in (ok, old, paused, gone):
        ev.register(coord, event, m)
    valid = _card(ok)
    expired = _card(old, expires_on=date.today() - timedelta(days=1))
    suspended = cards.suspend_card(None, _card(paused), "lost and found")
    revoked = cards.revoke_card(None, _card(gone), "stolen")

    admitted = ev.check_in(coord, event, token=cards.card_token(valid), gate="A")
    assert admitted["result"] == "admitted" and admitted["member"]["id"] == ok.id
    # The QR may hold a verification URL ending in the token.
    url = cards.verification_url(valid, "https://example.org")
    assert ev.check_in(coord, event, token=url)["result"] == "already_checked_in"
    for card, reason, member in ((expired, "card_expired", old), (suspended, "card_suspended", paused),
                                 (revoked, "card_revoked", gone)):
        answer = ev.check_in(coord, event, token=cards.card_token(card))
        assert (answer["result"], answer["reason"]) == ("rejected", reason), answer
        assert answer["member"]["id"] == member.id
        assert card.card_number in answer["message"]
        assert reg_status(event, member) == "registered"
    assert checkins(event) == 1


def test_bad_tokens_are_rejected_never_raised(event, staff):
    coord = staff["coordinator"]
    for token in ("", "garbage", "x" * 5000, "💥" * 100, "https://evil.example/verify/", "AAAA" * 30,
                  "\x00\x01", "/verify/../../etc/passwd"):
        answer = ev.check_in(coord, event, token=token)
        assert (answer["result"], answer["reason"]) == ("rejected", "invalid_token"), token
        assert answer["member"] is None
    assert checkins(event) == 0


def test_token_signed_by_another_organisation(event, staff, tree, make_member):
    member = make_member(tree["w1"])
    ev.register(staff["coordinator"], event, member)
    card = _card(member)
    other = Ed25519PrivateKey.generate()
    payload = cards.tokens.token_payload(card.card_number, card.expires_on, card_keys.key_id(other.public_key()))
    signature = other.sign(cards.tokens.SIGNING_CONTEXT + payload)
    forged = base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode()
    answer = ev.check_in(staff["coordinator"], event, token=forged)
    assert (answer["result"], answer["reason"]) == ("rejected", "invalid_token")
    assert "not signed by this organisation" in answer["message"]
    # Tampering with a genuine token breaks the signature.
    genuine = cards.card_token(card)
    tampered = genuine[:-3] + ("A" if genuine[-3] != "A" else "B") + genuine[-2:]
    assert ev.check_in(staff["coordinator"], event, token=tampered)["reason"] == "invalid_token"
    assert checkins(event) == 0


def test_unknown_card(event, staff, tree, make_member):
    card = _card(make_member(tree["w1"]))
    token = cards.card_token(card)
    db.session.delete(card)
    db.session.flush()
    answer = ev.check_in(staff["coordinator"], event, token=token)
    assert (answer["result"], answer["reason"]) == ("rejected", "unknown_card")


def test_members_outside_the_event_area_or_unknown(event, staff, tree, make_member):
    coord = staff["coordinator"]
    outsider = make_member(tree["w4"])
    card = _card(outsider)
    answer = ev.check_in(coord, event, token=cards.card_token(card))
    assert (answer["result"], answer["reason"]) == ("rejected", "not_in_scope")
    assert answer["member"] is None  # nothing about people outside the area
    # Looked up by id, someone the gate cannot see answers exactly like an id that does not exist.
    assert ev.check_in(coord, event, member_id=outsider.id) == ev.check_in(coord, event, member_id=10**6)
    assert ev.check_in(coord, event, member_id=outsider.id)["reason"] == "unknown_member"
    w2 = make_member(tree["w2"])  # within a global admin's reach, outside this ward event's area
    assert ev.check_in(staff["admin"], event, member_id=w2.id)["reason"] == "not_in_scope"
    deleted = make_member(tree["w1"])
    member_service.delete_member(None, deleted)
    assert ev.check_in(coord, event, member_id=deleted.id)["reason"] == "unknown_member"
    expelled = make_member(tree["w1"])
    ev.register(coord, event, expelled)
    member_service.change_status(None, expelled, "expelled", "test")
    answer = ev.check_in(coord, event, member_id=expelled.id)
    assert answer["reason"] == "member_not_in_good_standing"


@pytest.mark.parametrize("change, reason", [
    ({"status": "cancelled"}, "event_cancelled"),
    ({"status": "draft"}, "event_not_open"),
    ({"start_at": "FUTURE"}, "event_not_open"),
    ({"end_at": "PAST"}, "event_finished"),
])
def test_closed_doors(ctx, tree, staff, make_member, change, reason):
    coord = staff["coordinator"]
    now = utcnow()
    if change.get("start_at") == "FUTURE":
        event = make_event(coord, tree["w1"], start_at=now + timedelta(days=2), end_at=now + timedelta(days=2, hours=2))
    elif change.get("end_at") == "PAST":
        event = make_event(coord, tree["w1"], start_at=now - 5 * HOUR, end_at=now - HOUR)
    else:
        event = make_event(coord, tree["w1"], **change)
    m = make_member(tree["w1"])
    db.session.add(EventRegistration(event_id=event.id, member_id=m.id, status="registered"))
    db.session.flush()
    answer = ev.check_in(coord, event, member_id=m.id)
    assert (answer["result"], answer["reason"]) == ("rejected", reason)
    assert answer["message"]
    assert checkins(event) == 0


def test_doors_open_before_the_start(ctx, tree, staff, make_member):
    coord = staff["coordinator"]
    now = utcnow()
    event = make_event(coord, tree["w1"], start_at=now + HOUR, end_at=now + 3 * HOUR, walk_ins_allowed=True)
    assert ev.check_in(coord, event, member_id=make_member(tree["w1"]).id)["result"] == "admitted"


# --- check-in: nonces ----------------------------------------------------------------------


def test_same_nonce_same_answer_one_record(event, staff, tree, make_member):
    coord = staff["coordinator"]
    m = make_member(tree["w1"])
    ev.register(coord, event, m)
    first = ev.check_in(coord, event, member_id=m.id, gate="A", nonce="n-1")
    retry = ev.check_in(coord, event, member_id=m.id, gate="A", nonce="n-1")
    assert first["result"] == "admitted"
    assert retry.pop("replayed") is True and retry == first  # not "already checked in"
    assert checkins(event) == 1
    # The same nonce for another member, or from another user, is refused.
    other = make_member(tree["w1"])
    ev.register(coord, event, other)
    reused = ev.check_in(coord, event, member_id=other.id, nonce="n-1")
    assert (reused["result"], reused["reason"]) == ("rejected", "nonce_reused")
    stolen = ev.check_in(staff["admin"], event, member_id=m.id, nonce="n-1")
    assert stolen["reason"] == "nonce_reused"
    assert reg_status(event, other) == "registered"
    # Rejections are remembered too.
    bad = ev.check_in(coord, event, token="garbage", nonce="n-2")
    assert ev.check_in(coord, event, token="garbage", nonce="n-2") == dict(bad, replayed=True)
    assert db.session.scalar(select(func.count()).select_from(EventCheckinNonce)) == 2


# --- attachments --------------------------------------------------------------------------


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(out, "PNG")
    return out.getvalue()


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return out.getvalue()


def test_attachments_are_checked_by_content(app, event, staff):
    coord = staff["coordinator"]
    pdf = ev.add_attachment(coord, event, "agenda.pdf", _pdf(), "agenda")
    assert pdf.content_type == "application/pdf" and pdf.size == len(_pdf())
    assert ev.add_attachment(coord, event, "flyer.PNG", _png(), "flyer").content_type == "image/png"
    assert ev.add_attachment(coord, event, "notes.docx", _docx(), "other").filename == "notes.docx"
    with pytest.raises(ServiceError, match="does not match its name"):
        ev.add_attachment(coord, event, "agenda.pdf", _png())
    with pytest.raises(ServiceError, match="PDF, PNG, JPEG or Word"):
        ev.add_attachment(coord, event, "evil.pdf", b"MZ\x90\x00 not a pdf")
    with pytest.raises(ServiceError, match="PDF, PNG, JPEG or Word"):
        ev.add_attachment(coord, event, "flyer.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(ServiceError, match="empty"):
        ev.add_attachment(coord, event, "a.pdf", b"")
    app.config["EVENT_ATTACHMENT_MAX_BYTES"] = 10
    try:
        with pytest.raises(ServiceError, match="too large"):
            ev.add_attachment(coord, event, "a.pdf", _pdf())
    finally:
        app.config["EVENT_ATTACHMENT_MAX_BYTES"] = 10 * 1024 * 1024
    name = ev.add_attachment(coord, event, "../../etc/passwd.pdf", _pdf()).filename
    assert "/" not in name and name.endswith(".pdf")


def test_delete_event_refused_with_attendance(event, staff, tree, make_member):
    m = make_member(tree["w1"])
    ev.register(staff["admin"], event, m)
    ev.check_in(staff["admin"], event, member_id=m.id)
    with pytest.raises(ServiceError, match="cancel it instead"):
        ev.delete_event(staff["admin"], event)
    other = make_event(staff["admin"], tree["w1"])
    ev.register(staff["admin"], other, m)
    ev.delete_event(staff["admin"], other)
    assert db.session.get(Event, other.id) is None
