"""Mail to a member about their place at an event: the registration confirmation, and a waiting-list place won.

- ``registered``: sent when a member registers themselves (the portal and
  ``POST /api/v1/events/{id}/register`` both go through
  ``self_service.register_self``); it says whether they have a place or
  which number they are on the waiting list.
- ``promoted``: sent from ``promote_waitlist`` whoever freed the place (a
  member cancelling, staff cancelling, a larger capacity), so nobody learns
  of their place only by looking.

Both carry the event's name, its time in the organisation's time zone, the
place, and an absolute link to the event's portal page (``link_to``, from
MUSTER_PUBLIC_URL). The idempotency key is per registration and per
registration time: a retried request or a second call sends nothing new,
while a member who cancels and registers again is told again. Mail is
recorded here (flushed) and delivered once the caller commits; a rolled-back
registration sends nothing. A member without an email address gets a
*suppressed* row, as ``send_mail`` does for everyone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventRegistration, MailMessage, User
from app.services import mail, notifications
from app.services.events.times import local


def _when(event: Event) -> str:
    start, end = local(event.start_at), local(event.end_at)
    zone = start.tzname() or ""
    until = end.strftime("%H:%M") if start.date() == end.date() else end.strftime("%a %d %b %Y, %H:%M")
    return f"{start:%A %d %B %Y, %H:%M} – {until} {zone}".strip()


def _place(event: Event) -> str:
    return ", ".join(p for p in (event.venue, event.location) if p) or event.unit.name


def _context(reg: EventRegistration, **extra: Any) -> dict[str, Any]:
    event = reg.event
    return {"event": event, "event_title": event.title, "when": _when(event), "place": _place(event),
            "link": mail.link_to("portal.event", event_id=event.id), "first_name": reg.member.first_name,
            "status": reg.status, **extra}


def _stamp(reg: EventRegistration) -> str:
    return reg.registered_at.strftime("%Y%m%dT%H%M%S%f")


def _login(reg: EventRegistration, actor: Any) -> User | None:
    """The member's portal login (their address when the member record has none)."""
    if isinstance(actor, User) and actor.member_id == reg.member_id:
        return actor
    return db.session.scalar(select(User).where(User.member_id == reg.member_id))


def registered(reg: EventRegistration, position: int | None = None, actor: Any = None) -> MailMessage:
    """Queue the confirmation of ``reg`` (a place, or number ``position`` on the waiting list)."""
    return mail.send_mail("events.registered", None, _context(reg, position=position),
                          key=f"events.registered:{reg.id}:{_stamp(reg)}", member=reg.member,
                          user=_login(reg, actor), actor=actor if getattr(actor, "id", None) else None)


def promoted(reg: EventRegistration, actor: Any = None) -> MailMessage:
    """Queue the news that ``reg`` moved from the waiting list to a place."""
    notifications.notify(reg.member, "event.promoted", f"You have a place at {reg.event.title}",
                         f"A place came free: you moved from the waiting list. {_when(reg.event)}.",
                         mail.link_to("portal.event", event_id=reg.event_id))
    # An optional notice: mailed unless the member switched "event.promoted" off, with an unsubscribe link.
    return notifications.send_optional_mail(
        reg.member, "event.promoted", "events.promoted", _context(reg), key=f"events.promoted:{reg.id}:{_stamp(reg)}",
        user=_login(reg, actor), actor=actor if getattr(actor, "id", None) else None)
