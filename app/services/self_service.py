"""Self-service: what a signed-in member sees and does about their own membership (portal and /api/v1/me).

The rules, in one place for both faces:

- *Whose records?* Always the actor's own: the member linked to their login
  (``own_member``). No function here takes a member id from outside, so an
  id changed in a URL can only name an event, never another person. A login
  with no live member record (most staff) gets ``NoMembership``, a 404.
- *May they?* Every decision goes through ``app.security``: the member role's
  self-service grants (``profile.read_own``, ``profile.update_own``,
  ``cards.read_own``, ``events.register``) reach the actor's own records and
  the published events of their unit and the units above it, never a staff
  scope. A staff user who is also a member acts here as that member.
- *Their card*: the current card (active or suspended), else the latest;
  its QR code and PDF are given out only while it is valid (``card_for_display``):
  an expired, suspended or revoked card gets a message instead.
- *Their events*: published events of their area that have not ended, soonest
  first; registering and cancelling go through ``services.events``, which
  keeps capacity and the waiting list (and its order) honest.
- *Their contact details*: phone, email and address only, checked by the
  member registry's own rules (``members.clean``), every field at once;
  a duplicate phone or email is refused without saying whose it is.

Services flush; the caller (view or API handler) commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Event, EventRegistration, Member, MembershipCard
from app.models.base import utcnow
from app.security import authorize, load_for, permits, scoped
from app.services import cards as card_service
from app.services import events as event_service
from app.services import members as member_service
from app.services.errors import NotFound, ServiceError
from app.services.events import notify
from app.services.inputs import parse_id
from app.services.validation import FieldErrors

CONTACT_FIELDS = ("phone", "email", "address")
# Within this many days of expiry the member is told renewal is coming (dues open it, later).
RENEWAL_NOTICE_DAYS = 60
DASHBOARD_EVENTS = 5

MEMBER_STATUS_LABELS = {
    "pending": "Pending approval", "active": "Active", "suspended": "Suspended", "lapsed": "Lapsed",
    "resigned": "Resigned", "deceased": "Deceased", "expelled": "Expelled",
}
REGISTRATION_LABELS = {
    "registered": "Registered", "waitlisted": "On the waiting list", "attended": "Attended",
    "cancelled": "Cancelled", "no_show": "Did not attend",
}
NO_MEMBERSHIP = "This account is not linked to a membership record."


class NoMembership(NotFound):
    """The signed-in user has no live member record: nothing of "mine" exists (404)."""

    def __init__(self) -> None:
        super().__init__(NO_MEMBERSHIP)


# --- whose records ------------------------------------------------------------------------


def linked_member(actor: Any) -> Member:
    """The live member linked to the actor's login, or ``NoMembership``."""
    member = getattr(actor, "member", None)
    if member is None or member.deleted_at is not None:
        raise NoMembership()
    return member


def own_member(actor: Any, permission: str = "profile.read_own") -> Member:
    """The actor's own member record, when they may use ``permission`` on it (else 404 / 403)."""
    member = linked_member(actor)
    authorize(actor, permission, member, message="You may not do this with your membership record.")
    return member


def has_membership(actor: Any) -> bool:
    """Does the actor have a live member record (for menus: My card, My events)?"""
    member = getattr(actor, "member", None)
    return member is not None and member.deleted_at is None


# --- the card ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardState:
    """What the member is told about their card: the card (or None), its status today and why."""

    card: MembershipCard | None
    status: str  # none, active, grace (active, past its date, within the grace period), expired, suspended, revoked
    message: str
    tone: str  # a Bootstrap colour: success, warning, danger, secondary
    days_left: int | None = None
    renewal_soon: bool = False

    @property
    def showable(self) -> bool:
        """May the QR code and the PDF be shown? Only for a card valid today (in grace it still is)."""
        return self.status in ("active", "grace")


def card_state(actor: Any, today: date | None = None) -> CardState:
    """The actor's card and what to say about it (a member without a card gets status ``none``)."""
    member = linked_member(actor)
    card = card_service.current_card(member)
    if card is None:
        return CardState(None, "none", "You do not have a membership card yet. Cards are issued by your "
                                       "ward's coordinators once your membership is active.", "secondary")
    authorize(actor, "cards.read_own", card, message="You may not see this card.")
    today = today or date.today()
    status = card.effective_status(today)
    if status == "expired":
        return CardState(card, status, f"Your card expired on {card.expires_on:%d %b %Y}. Renewal opens "
                                       "with dues; until then your coordinator can help.", "warning")
    if status == "suspended":
        return CardState(card, status, "Your card is suspended: it will not be accepted at events. Contact "
                                       "your ward's coordinators to find out why.", "danger")
    if status == "revoked":
        return CardState(card, status, "Your card has been revoked and is no longer valid. Contact your "
                                       "ward's coordinators for a new one.", "danger")
    if card.in_grace(today):
        ends = card.grace_ends_on()
        return CardState(card, "grace", f"Your card expired on {card.expires_on:%d %b %Y} and is in its grace "
                                        f"period until {ends:%d %b %Y}: it is still accepted, and you can still "
                                        "renew it (renewal opens with dues). After that date it expires and your "
                                        "membership lapses.", "warning", (card.expires_on - today).days, True)
    days_left = (card.expires_on - today).days if card.expires_on is not None else None
    soon = days_left is not None and days_left <= RENEWAL_NOTICE_DAYS
    message = "Your card is valid." if days_left is None else f"Your card is valid until {card.expires_on:%d %b %Y}."
    if soon:
        message += f" It expires in {days_left} day{'s' if days_left != 1 else ''}: renewal opens with dues."
    return CardState(card, status, message, "warning" if soon else "success", days_left, soon)


def my_card(actor: Any) -> MembershipCard:
    """The actor's card (current, else latest) they may read; ``NotFound`` when they never had one."""
    state = card_state(actor)
    if state.card is None:
        raise NotFound("You do not have a membership card yet.")
    return state.card


def card_for_display(actor: Any) -> MembershipCard:
    """The actor's card for its QR code or PDF: only while valid (409 with the reason otherwise)."""
    state = card_state(actor)
    if state.card is None:
        raise NotFound("You do not have a membership card yet.")
    if not state.showable:
        raise ServiceError(state.message, status=409)
    return state.card


def readable_card(actor: Any, card_id: Any) -> MembershipCard:
    """A card by id for reading: the actor's own (``cards.read_own``), else one in their ``cards.read`` scope.

    Anything else answers as ``load_for`` does (404 out of reach, 403 in reach without the right).
    """
    pk = parse_id(card_id)
    card = db.session.get(MembershipCard, pk) if pk is not None else None
    if card is not None and permits(actor, "cards.read_own", card):
        return card
    return load_for(actor, MembershipCard, card_id, "cards.read")


# --- events --------------------------------------------------------------------------------


def open_events(actor: Any, now: datetime | None = None):
    """SELECT of the published events of the actor's area that have not ended, soonest first.

    Their unit and the units above it (the events they may attend), narrowed
    by the one scoping helper for ``events.register``.
    """
    member = linked_member(actor)
    now = now or utcnow()
    stmt = select(Event).where(Event.unit_id.in_(member.unit.ancestor_ids), Event.status == "upcoming",
                               Event.end_at > now)
    return scoped(stmt, actor, "events.register", Event).order_by(Event.start_at, Event.id)


def count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def open_events_page(actor: Any, offset: int, limit: int) -> tuple[list[Event], int]:
    """A page of ``open_events`` and their total."""
    stmt = open_events(actor)
    total = count(stmt)
    items = list(db.session.scalars(stmt.options(selectinload(Event.unit)).offset(offset).limit(limit))) \
        if offset < total else []
    return items, total


def my_registrations_for(actor: Any, events: list[Event]) -> dict[int, EventRegistration]:
    """The actor's registrations for these events, by event id (one query)."""
    member = linked_member(actor)
    if not events:
        return {}
    stmt = select(EventRegistration).where(EventRegistration.member_id == member.id,
                                           EventRegistration.event_id.in_([e.id for e in events]))
    return {r.event_id: r for r in db.session.scalars(scoped(stmt, actor, "events.register", EventRegistration))}


def waitlist_positions(registrations: list[EventRegistration]) -> dict[int, int]:
    """1-based places on the waiting list of the waitlisted among ``registrations``, by registration id."""
    waiting = [r for r in registrations if r.status == "waitlisted"]
    positions: dict[int, int] = {}
    for reg in waiting:
        ahead = db.session.scalar(
            select(func.count()).select_from(EventRegistration).where(
                EventRegistration.event_id == reg.event_id, EventRegistration.status == "waitlisted",
                or_(EventRegistration.registered_at < reg.registered_at,
                    and_(EventRegistration.registered_at == reg.registered_at, EventRegistration.id < reg.id))))
        positions[reg.id] = (ahead or 0) + 1
    return positions


WHEN = ("upcoming", "past", "all")


def my_registrations(actor: Any, when: str = "all", *, include_cancelled: bool = True,
                     now: datetime | None = None):
    """SELECT of the actor's own registrations with their events.

    ``upcoming``: events not ended yet, soonest first; ``past``: ended, latest
    first (the attendance history); ``all``: latest first.
    """
    member = linked_member(actor)
    if when not in WHEN:
        raise ServiceError(f"'when' must be one of: {', '.join(WHEN)}.", field="when")
    now = now or utcnow()
    stmt = (select(EventRegistration).join(Event, Event.id == EventRegistration.event_id)
            .where(EventRegistration.member_id == member.id, Event.status != "draft")
            .options(selectinload(EventRegistration.event).selectinload(Event.unit)))
    if not include_cancelled:
        stmt = stmt.where(EventRegistration.status != "cancelled")
    stmt = scoped(stmt, actor, "events.register", EventRegistration)
    if when == "upcoming":
        return stmt.where(Event.end_at > now).order_by(Event.start_at, Event.id)
    if when == "past":
        stmt = stmt.where(Event.end_at <= now)
    return stmt.order_by(Event.start_at.desc(), Event.id.desc())


def registrations_page(actor: Any, when: str, offset: int, limit: int, *,
                       include_cancelled: bool = True) -> tuple[list[EventRegistration], int]:
    """A page of ``my_registrations`` and their total."""
    stmt = my_registrations(actor, when, include_cancelled=include_cancelled)
    total = count(stmt)
    items = list(db.session.scalars(stmt.offset(offset).limit(limit))) if offset < total else []
    return items, total


def my_event(actor: Any, event_id: Any) -> Event:
    """An event the actor may look at as a member: one open to their area, or one they registered for.

    Anything else (another ward's event, a draft, an id that does not exist) is ``NotFound``.
    """
    linked_member(actor)
    try:
        return event_service.load_event(actor, event_id, "events.register")
    except NotFound:
        reg = _own_registration_by_event_id(actor, event_id)
        if reg is None or reg.event.status == "draft":
            raise
        return reg.event


def _own_registration_by_event_id(actor: Any, event_id: Any) -> EventRegistration | None:
    pk = parse_id(event_id)
    if pk is None:
        return None
    member = linked_member(actor)
    stmt = select(EventRegistration).where(EventRegistration.event_id == pk,
                                           EventRegistration.member_id == member.id)
    return db.session.scalar(scoped(stmt, actor, "events.register", EventRegistration))


def my_registration(actor: Any, event: Event) -> EventRegistration | None:
    """The actor's registration for ``event`` (any status), or None."""
    return my_registrations_for(actor, [event]).get(event.id)


def register_self(actor: Any, event_id: Any, *, notes: str | None = None) -> tuple[EventRegistration, bool]:
    """Register the actor for an event open to them; a full event puts them on the waiting list.

    Returns ``(registration, created)``; registering again changes nothing.
    The event service keeps the rules (deadline, capacity, barred statuses).
    A new registration queues the confirmation mail (``events.notify``),
    delivered once the caller commits.
    """
    member = linked_member(actor)
    event = event_service.load_event(actor, event_id, "events.register")
    reg, created = event_service.register(actor, event, member, source="self", notes=notes)
    if created:
        notify.registered(reg, waitlist_positions([reg]).get(reg.id), actor)
    return reg, created


def cancel_self(actor: Any, event_id: Any) -> tuple[EventRegistration, list[EventRegistration]]:
    """Cancel the actor's own registration; returns it and whoever moved up from the waiting list.

    An event out of reach is ``NotFound``; no registration for an event they
    may see is a broken rule (404 in the API, a message on the page), one
    already cancelled a 409.
    """
    linked_member(actor)
    reg = _own_registration_by_event_id(actor, event_id)
    if reg is None:
        my_event(actor, event_id)  # an event out of reach answers 404 like a missing one
        raise ServiceError("You are not registered for this event.", status=404)
    if reg.status == "cancelled":
        raise ServiceError("Your registration for this event is already cancelled.", status=409)
    promoted = event_service.cancel_registration(actor, reg)
    return reg, promoted


def can_register(event: Event, reg: EventRegistration | None, now: datetime | None = None) -> bool:
    """Is a Register button worth showing (the service still has the last word)?"""
    now = now or utcnow()
    if reg is not None and reg.status in ("registered", "waitlisted", "attended"):
        return False
    if event.status_at(now) not in ("upcoming", "ongoing"):
        return False
    return event.registration_deadline is None or now <= event.registration_deadline


def can_cancel(event: Event, reg: EventRegistration | None, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return reg is not None and reg.status in ("registered", "waitlisted") and event.end_at > now


# --- contact details -----------------------------------------------------------------------


def clean_contact(data: dict[str, Any]) -> dict[str, Any]:
    """The contact fields sent, checked by the registry's rules; any other field is refused. All at once."""
    errors = FieldErrors()
    for key in sorted(set(data) - set(CONTACT_FIELDS)):
        errors.add(key, f"'{key}' cannot be changed here: only phone, email and address.")
    values: dict[str, Any] = {}
    with errors.check():
        values = member_service.clean({k: v for k, v in data.items() if k in CONTACT_FIELDS}, partial=True)
    errors.raise_if_any()
    return values


# Changing them (phone and address at once, a new email once its mailed link is followed) is
# ``app.services.profile.update_contact``: the one path for the portal and PATCH /api/v1/me.
