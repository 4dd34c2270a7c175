"""Check-in at the door: ``check_in`` admits a member from a card credential or a member id.

Its answer is ``admitted``, ``already_checked_in`` or ``rejected`` with a
reason (``REASONS``); it never raises on bad input. One attendance per member
and slot is guaranteed by the unique key of ``event_checkins`` (INSERT ... ON
CONFLICT DO NOTHING, ``insert_ignore``), so simultaneous scans at several
gates count once, and a request carrying a nonce that was seen before gets
the stored answer instead of a second record.

This is the door's hot path (``bench/checkin.py``): the statements of the
usual case are built once at import and executed through Core.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.orm import joinedload

from app.database import insert_ignore, lock_row, update_then_insert_ignore
from app.extensions import db
from app.models import Event, EventCheckin, EventCheckinNonce, EventRegistration, Member
from app.models.base import utcnow
from app.security import authorize, permits
from app.services.events.registrations import HOLDING, has_room, registration_for
from app.services.events.times import local
from app.services.events.visibility import BARRED_MEMBER_STATUSES, member_in_event_area

# "multiple entries" events: scans of one member within this window are one entry.
MULTIPLE_ENTRY_WINDOW_SECONDS = 60
NONCE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_GATE_CHARS = 60

REASONS = {
    "event_cancelled": "This event has been cancelled.",
    "event_finished": "This event is over.",
    "event_not_open": "Check-in for this event is not open.",
    "invalid_token": "This is not a valid membership card.",
    "unknown_card": "This card is not known here.",
    "card_expired": "This card has expired.",
    "card_suspended": "This card is suspended.",
    "card_revoked": "This card has been revoked.",
    "unknown_member": "No such member.",
    "not_in_scope": "This member is not part of this event's area.",
    "member_not_in_good_standing": "This membership is not in good standing.",
    "not_registered": "Not registered for this event, and walk-ins are not admitted.",
    "waitlisted": "On the waiting list: not admitted while the event is full.",
    "event_full": "The event is full.",
    "nonce_reused": "This request id was already used for another check-in.",
}


@dataclass
class Outcome:
    """The door's decision, before it is turned into the JSON answer."""

    result: str
    reason: str | None = None
    message: str = ""
    member: Member | None = None
    first_at: datetime | None = None
    first_gate: str | None = None
    at: datetime | None = None
    walk_in: bool = False
    registration_status: str | None = None


def slot_for(event: Event, now: datetime) -> str:
    """The check-in slot: one per event, per local day, or per minute (multiple entries)."""
    if event.checkin_rule == "once_per_day":
        return local(now).date().isoformat()
    if event.checkin_rule == "multiple":
        return f"m{int(now.timestamp()) // MULTIPLE_ENTRY_WINDOW_SECONDS}"
    return "once"


def checkin_window(event: Event, now: datetime) -> tuple[str, str] | None:
    """Why the door is closed (reason, message), or None when check-in is open."""
    state = event.status_at(now)
    if state == "cancelled":
        return "event_cancelled", REASONS["event_cancelled"]
    if state == "completed":
        return "event_finished", REASONS["event_finished"]
    if state == "draft":
        return "event_not_open", "This event is still a draft: check-in is not open."
    opens = event.start_at - timedelta(minutes=int(current_app.config.get("EVENT_CHECKIN_OPENS_MINUTES", 120)))
    if now < opens:
        when = local(opens).strftime("%Y-%m-%d %H:%M")
        return "event_not_open", f"Check-in opens at {when}."
    return None


def clean_gate(gate: Any) -> str | None:
    """A gate name as recorded: trimmed, at most MAX_GATE_CHARS, None when empty."""
    text = str(gate or "").strip()
    return text[:MAX_GATE_CHARS] or None


def valid_nonce(nonce: Any) -> bool:
    """Is this a usable request id (1-64 letters, digits and ._:-)?"""
    return isinstance(nonce, str) and bool(NONCE_RE.match(nonce))


def _request_key(token: str | None, member_id: int | None) -> str:
    presented = f"t:{token}" if token is not None else f"m:{member_id}"
    return hashlib.sha256(presented.encode("utf-8", "replace")).hexdigest()


def member_summary(member: Member) -> dict[str, Any]:
    """What the gate needs to recognise a person: no contact details."""
    return {
        "id": member.id,
        "membership_number": member.membership_number,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "full_name": member.full_name,
        "status": member.status,
        "unit": member.unit.name if member.unit is not None else None,
    }


def _answer(event: Event, outcome: Outcome, gate: str | None) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value is not None else None

    return {
        "result": outcome.result,
        "reason": outcome.reason,
        "message": outcome.message or (REASONS.get(outcome.reason, "") if outcome.reason else ""),
        "member": member_summary(outcome.member) if outcome.member is not None else None,
        "first_checked_in_at": iso(outcome.first_at),
        "first_gate": outcome.first_gate,
        "checked_in_at": iso(outcome.at),
        "gate": gate,
        "walk_in": outcome.walk_in,
        "registration_status": outcome.registration_status,
        "event_id": event.id,
    }


def check_in(actor, event: Event, *, token: str | None = None, member_id: int | None = None,
             gate: str | None = None, nonce: str | None = None, method: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Admit a member at the door; the answer as JSON-ready data (never raises on bad input).

    Give either ``token`` (what the card's QR holds: the credential, or a URL
    ending in it) or ``member_id`` (found by name or number at the gate).
    With a ``nonce`` the request is idempotent: the same nonce from the same
    user for the same card or member returns the first answer without
    recording anything again; a nonce reused for something else is refused.
    Door staff need events.update on the event.
    """
    authorize(actor, "events.update", event, message="You may not check people in at this event.")
    now = now or utcnow()
    gate = clean_gate(gate)
    key = _request_key(token, member_id)
    nonce_row_id = None
    if nonce is not None:
        nonce_row_id = insert_ignore(EventCheckinNonce, {
            "event_id": event.id, "nonce": nonce, "user_id": getattr(actor, "id", None),
            "request_key": key, "response": None, "created_at": now,
        })
        if nonce_row_id is None:
            stored = db.session.scalar(select(EventCheckinNonce).where(EventCheckinNonce.event_id == event.id,
                                                                       EventCheckinNonce.nonce == nonce))
            if (stored is not None and stored.response is not None and stored.request_key == key
                    and stored.user_id == getattr(actor, "id", None)):
                return dict(stored.response, replayed=True)
            return _answer(event, Outcome("rejected", "nonce_reused"), gate)
    outcome = _decide(actor, event, token, member_id, gate, method, now)
    answer = _answer(event, outcome, gate)
    if nonce_row_id is not None:
        db.session.connection().execute(_STORE_ANSWER, {"row_id": nonce_row_id, "answer": answer})
    return answer


_MEMBER_WITH_UNIT = select(Member).options(joinedload(Member.unit)).where(Member.id == bindparam("member_id"))


def _member_with_unit(member_id: int) -> Member | None:
    return db.session.scalar(_MEMBER_WITH_UNIT, {"member_id": member_id})


def _member_from_token(event: Event, token: str) -> tuple[Member | None, Outcome | None]:
    """The card's member, or the refusal; a card in grace gives both: the member and an Outcome with
    reason ``card_grace`` carrying the verdict, which the door shows with its answer (in grace admits)."""
    from app.services import cards

    token = cards.scanned_token(token)  # the card service reads scans, here as on the verify page
    if not token:
        return None, Outcome("rejected", "invalid_token")
    try:
        # The member and its unit come in the card's query: the area check and the answer need them.
        verification = cards.verify_token(token, with_member=True)
    except Exception:  # the contract says it never raises; a bug there must not stop the door
        current_app.logger.exception("verify_token raised")
        return None, Outcome("rejected", "invalid_token")
    status = verification.status
    member = verification.member
    if status == "valid" and member is not None:
        return member, None
    if status == "grace" and member is not None:
        # In grace the card is still the member's and renewable: admitted, the verdict shown (_decide).
        return member, Outcome("admitted", "card_grace", verification.message)
    if status in ("expired", "suspended", "revoked"):
        shown = member if member is not None and member.deleted_at is None and member_in_event_area(event, member) \
            else None
        message = verification.message or REASONS[f"card_{status}"]
        return None, Outcome("rejected", f"card_{status}", message, member=shown)
    if status == "unknown":
        return None, Outcome("rejected", "unknown_card", verification.message or REASONS["unknown_card"])
    return None, Outcome("rejected", "invalid_token", verification.message or REASONS["invalid_token"])


def _member_refusal(event: Event, member: Member) -> Outcome | None:
    """Why this member may not come in at all (area, standing), or None."""
    if not member_in_event_area(event, member):
        return Outcome("rejected", "not_in_scope")
    if member.status in BARRED_MEMBER_STATUSES:
        return Outcome("rejected", "member_not_in_good_standing",
                       f"This member is {member.status}: not admitted.", member=member)
    return None


def place_refusal(event: Event, member: Member, reg: EventRegistration | None) -> Outcome | None:
    """Why a member holding no place (unregistered, waitlisted, cancelled, no-show) may not take one.

    Walk-ins need an open door, and a place under the capacity; the event row
    is locked first so two gates cannot both take the last place.
    """
    status = reg.status if reg is not None else None
    if not (event.walk_ins_allowed or not event.registration_required):
        reason = "waitlisted" if status == "waitlisted" else "not_registered"
        return Outcome("rejected", reason, member=member, registration_status=status)
    if event.capacity is not None:
        lock_row(Event, event.id)
        if not has_room(event):
            return Outcome("rejected", "event_full", member=member, registration_status=status)
    return None


def _decide(actor, event: Event, token: str | None, member_id: int | None, gate: str | None,
            method: str | None, now: datetime) -> Outcome:
    closed = checkin_window(event, now)
    if closed is not None:
        return Outcome("rejected", closed[0], closed[1])
    grace_note = None
    if token is not None:
        member, refusal = _member_from_token(event, token)
        if refusal is not None and refusal.reason == "card_grace":  # not a refusal: a note for the answer
            grace_note, refusal = refusal.message, None
        if refusal is not None:
            return refusal
        method = method or "card"
    else:
        member = _member_with_unit(member_id) if isinstance(member_id, int) and 0 < member_id <= 2**31 - 1 else None
        if member is not None and not permits(actor, "members.read", member):
            member = None  # looked up by id: someone the gate cannot see answers as if missing
        method = method or "lookup"
    if member is None or member.deleted_at is not None:
        return Outcome("rejected", "unknown_member")
    outcome = _admit(actor, event, member, gate, method, now)
    if grace_note and outcome.result != "rejected":
        outcome.message = f"{outcome.message} Card in grace: {grace_note}"
    return outcome


def _admit(actor, event: Event, member: Member, gate: str | None, method: str, now: datetime) -> Outcome:
    """The member is known: admit them (or not) under the event's rules."""
    refusal = _member_refusal(event, member)
    if refusal is not None:
        return refusal

    if event.checkin_rule != "multiple":
        admitted = _admit_registered(actor, event, member, gate, method, now)
        if admitted is not None:
            return admitted

    reg = registration_for(event, member)
    walk_in = False
    if reg is None or reg.status not in HOLDING:
        refusal = place_refusal(event, member, reg)
        if refusal is not None:
            return refusal
        walk_in = True
        if reg is None:
            # Another gate may be registering the same walk-in right now: the unique
            # (event, member) key lets one insert win; the other reads the winner's row.
            insert_ignore(EventRegistration, {
                "event_id": event.id, "member_id": member.id, "status": "registered", "source": "walk_in",
                "registered_at": now, "registered_by_id": getattr(actor, "id", None), "updated_at": now,
            })
            reg = registration_for(event, member)

    if event.checkin_rule == "multiple":
        recent = db.session.execute(
            select(EventCheckin.at, EventCheckin.gate)
            .where(EventCheckin.event_id == event.id, EventCheckin.member_id == member.id,
                   EventCheckin.at > now - timedelta(seconds=MULTIPLE_ENTRY_WINDOW_SECONDS))
            .order_by(EventCheckin.at).limit(1)
        ).first()
        if recent is not None:
            return Outcome("already_checked_in", None, "Already let in a moment ago.", member=member,
                           first_at=recent.at, first_gate=recent.gate, registration_status=reg.status)

    slot = slot_for(event, now)
    inserted = insert_ignore(EventCheckin, {
        "event_id": event.id, "member_id": member.id, "slot": slot, "at": now, "gate": gate,
        "by_id": getattr(actor, "id", None), "method": method,
    })
    if inserted is None:
        return _already(event, member, slot)
    if reg.status != "attended":
        reg.status = "attended"
    if reg.checked_in_at is None:
        reg.checked_in_at, reg.checked_in_by_id, reg.checkin_gate = now, getattr(actor, "id", None), gate
    db.session.flush()
    message = "Walk-in: registered and admitted." if walk_in else "Admitted."
    return Outcome("admitted", None, message, member=member, first_at=reg.checked_in_at,
                   first_gate=reg.checkin_gate, at=now, walk_in=walk_in, registration_status="attended")


_REG = EventRegistration.__table__.c
_FIRST = _REG.checked_in_at.is_(None)
# Built once (this is the door's hot path): mark a registered member attended, keeping the first
# check-in's time, gate and user; RETURNING those. Matches nothing for members holding no place.
# The statuses as OR-ed equalities: an IN list is an "expanding" parameter that SQLAlchemy
# renders again on every execution.
_ATTEND_REGISTERED = (
    update(EventRegistration.__table__)
    .where(_REG.event_id == bindparam("event"), _REG.member_id == bindparam("member"),
           or_(*[_REG.status == status for status in HOLDING]))
    .values(status="attended",
            checked_in_at=func.coalesce(_REG.checked_in_at, bindparam("now", type_=_REG.checked_in_at.type)),
            checkin_gate=case((_FIRST, bindparam("gate", type_=_REG.checkin_gate.type)), else_=_REG.checkin_gate),
            checked_in_by_id=case((_FIRST, bindparam("actor", type_=_REG.checked_in_by_id.type)),
                                  else_=_REG.checked_in_by_id),
            updated_at=bindparam("now", type_=_REG.updated_at.type))
    .returning(_REG.checked_in_at, _REG.checkin_gate)
)
_STORE_ANSWER = (
    update(EventCheckinNonce.__table__)
    .where(EventCheckinNonce.__table__.c.id == bindparam("row_id"))
    .values(response=bindparam("answer", type_=EventCheckinNonce.__table__.c.response.type))
)


def _admit_registered(actor, event: Event, member: Member, gate: str | None, method: str,
                      now: datetime) -> Outcome | None:
    """The usual case at the door, in two statements (one round trip on PostgreSQL): a registered member.

    The UPDATE marks the registration attended, keeping the first check-in's
    time, gate and user, and row-locks it, so concurrent scans of one member
    queue here; the INSERT of the slot's check-in then decides admitted or
    already checked in (``database.update_then_insert_ignore``). None when the
    member holds no place (not registered, waitlisted, cancelled): the
    caller's slower path handles walk-ins and refusals.
    """
    actor_id = getattr(actor, "id", None)
    slot = slot_for(event, now)
    row, inserted = update_then_insert_ignore(_ATTEND_REGISTERED, {
        "event": event.id, "member": member.id, "now": now, "gate": gate, "actor": actor_id,
    }, EventCheckin, {
        "event_id": event.id, "member_id": member.id, "slot": slot, "at": now, "gate": gate, "by_id": actor_id,
        "method": method,
    })
    if row is None:
        return None
    for obj in list(db.session.identity_map.values()):  # a copy loaded earlier in this session is stale
        if isinstance(obj, EventRegistration) and obj.event_id == event.id and obj.member_id == member.id:
            db.session.expire(obj)
    if inserted is not None:
        return Outcome("admitted", None, "Admitted.", member=member, first_at=row.checked_in_at,
                       first_gate=row.checkin_gate, at=now, registration_status="attended")
    return _already(event, member, slot)


def _already(event: Event, member: Member, slot: str) -> Outcome:
    first = db.session.execute(
        select(EventCheckin.at, EventCheckin.gate)
        .where(EventCheckin.event_id == event.id, EventCheckin.member_id == member.id, EventCheckin.slot == slot)
    ).first()
    when = local(first.at).strftime("%H:%M") if first is not None else ""
    where = f" at {first.gate}" if first is not None and first.gate else ""
    return Outcome("already_checked_in", None, f"Already checked in{' at ' + when if when else ''}{where}.",
                   member=member, first_at=first.at if first else None, first_gate=first.gate if first else None,
                   registration_status="attended")
