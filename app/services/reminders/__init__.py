"""Reminders (issue 12): renewal reminders at offsets from card expiry, event reminders before the start.

Both sweeps (app/scheduler/sweeps.py runs them; ``flask jobs run`` too) work
the same way, and exactly once:

1. One set-based statement per offset inserts a row into the sent log for
   every reminder due now, ``INSERT ... SELECT ... ON CONFLICT DO NOTHING
   RETURNING id``: the log's unique key (member, kind, target) lets each
   reminder in once, ever. On PostgreSQL a second sweep at the same moment
   waits on the first one's uncommitted rows and then skips them.
2. For exactly the rows this run inserted, a portal notification and a mail
   are recorded (``send_mail(..., bulk=True)``: rate limited), in the same
   transaction as the log rows. The caller commits once; delivery is
   enqueued after that commit (app/services/mail/outbox.py).

So a re-run finds every key taken; a crash before the commit rolls back the
log with the mail (the next run sends it: no gap); a crash after it leaves a
queued outbox row that the mail sweep re-enqueues (no duplicate: delivery
claims the row). Everything not mailed is in the log with its reason: opted
out, no email address, renewed (reminders counting from an expiry date the
card no longer has, recorded when they fall due), already sent (the outbox
already held the message). A renewal reminder's mail carries a "Renew now"
link (``dues.renewal.renew_link_token``): the tiers, no sign-in needed. A delivery that failed after its retries shows as
the outbox row's status, next to the log row.

Renewal reminders count from the member's latest card (not lifetime) in the
organisation's time zone; each is due from its day for
``MUSTER_REMINDER_CATCHUP_DAYS`` (a scheduler down over a weekend catches up
once, a year-old reminder is never sent). Renewing moves the card's expiry,
so reminders of the old date stop matching at once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import String, cast, exists, literal, not_, or_, select, true
from sqlalchemy.orm import aliased, joinedload

from app.database import insert_on_conflict
from app.extensions import db
from app.models import Event, EventRegistration, MailMessage, Member, MembershipCard, ReminderLog
from app.services.dues.renewal import renew_link_token
from app.services.reminders import settings
from app.services.reminders.settings import fill

RENEWAL_MAIL = "reminders.renewal"
EVENT_MAIL = "reminders.event"
RENEWAL_NOTICE = "reminder.renewal"  # notification kinds (app/services/notifications.KINDS)
EVENT_NOTICE = "reminder.event"
# Members who still get reminders, and the cards reminders count from.
REMINDED_MEMBER_STATUSES = ("active", "lapsed")
COUNTED_CARD_STATUSES = ("active", "expired")
NO_MAIL_MEMBER_STATUSES = ("resigned", "deceased", "expelled")  # not reminded of events they registered for

REASON_NO_EMAIL = "No email address."
REASON_OPTED_OUT = "Opted out of these emails."
REASON_RENEWED = "Renewed: the card no longer expires on this date."
REASON_ALREADY_SENT = "Already sent"


def renewal_kind(offset: int) -> str:
    """The log's kind for an offset: renewal-30, renewal+0, renewal+14."""
    return f"renewal{offset:+d}"


def local_today(now: datetime) -> date:
    """``now``'s date where the organisation is (MUSTER_TIMEZONE): expiry dates are local days."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _notifications():
    """app/services/notifications (late: it imports the mail package); None while it does not exist."""
    try:
        from app.services import notifications
    except ImportError:  # pragma: no cover - the notifications part not installed
        return None
    return notifications


# --- selection (set-based) -----------------------------------------------------------------


def latest_card_clause(card) -> Any:
    """``card`` is its member's latest: no other counted or current card expires later (or never)."""
    other = aliased(MembershipCard)
    return not_(exists().where(
        other.member_id == card.member_id, other.id != card.id,
        other.status.in_(("active", "suspended", "expired")),
        or_(other.expires_on.is_(None), other.expires_on > card.expires_on),
    ))


def renewal_candidates(offset: int, first_due: date, last_due: date):
    """SELECT (member_id, card_id, expires_on) of renewal reminders at ``offset`` due between the two days."""
    card = MembershipCard
    return (
        select(card.member_id, card.id.label("card_id"), card.expires_on)
        .join(Member, Member.id == card.member_id)
        .where(
            card.card_type != "lifetime",
            card.status.in_(COUNTED_CARD_STATUSES),
            card.expires_on.between(first_due - timedelta(days=offset), last_due - timedelta(days=offset)),
            Member.deleted_at.is_(None),
            Member.status.in_(REMINDED_MEMBER_STATUSES),
            latest_card_clause(card),
        )
    )


def _insert_log(select_stmt, columns: list[str]) -> list[int]:
    """INSERT INTO reminder_log (columns) SELECT ... ON CONFLICT DO NOTHING; the ids inserted.

    (SQLite needs a WHERE in such a SELECT to parse the ON CONFLICT: hence ``true()``.)
    """
    stmt = (insert_on_conflict(ReminderLog.__table__).from_select(columns, select_stmt.where(true()))
            .on_conflict_do_nothing().returning(ReminderLog.__table__.c.id))
    db.session.flush()
    return list(db.session.execute(stmt).scalars())


def _log_renewals(offset: int, today: date, now: datetime, catchup: int) -> list[int]:
    first_due = today - timedelta(days=catchup - 1)
    found = renewal_candidates(offset, first_due, today).subquery()
    rows = select(
        found.c.member_id, literal(renewal_kind(offset)), cast(found.c.expires_on, String(40)), found.c.card_id,
        literal(offset), found.c.expires_on, literal("mailed"), literal(""), literal(now, ReminderLog.created_at.type),
    )
    return _insert_log(rows, ["member_id", "kind", "target", "card_id", "offset_days", "expires_on", "outcome",
                              "reason", "created_at"])


def _log_renewed(offset: int, today: date, now: datetime, catchup: int) -> int:
    """Reminders at ``offset`` counting from an expiry date the member's card has moved on from: 'renewed'.

    Only targets that had reminders already (the member was being reminded)
    and whose card now expires later; recorded on the day they would have gone out.
    """
    first_due = today - timedelta(days=catchup - 1)
    log = aliased(ReminderLog)
    card = aliased(MembershipCard)
    renewed = exists().where(
        card.member_id == log.member_id, card.status == "active",
        or_(card.expires_on.is_(None), card.expires_on > log.expires_on),
    )
    targets = (
        select(log.member_id, log.target, log.expires_on, log.card_id)
        .where(log.kind.like("renewal%"), log.expires_on.isnot(None),
               log.expires_on.between(first_due - timedelta(days=offset), today - timedelta(days=offset)),
               renewed)
        .distinct().subquery()
    )
    rows = select(
        targets.c.member_id, literal(renewal_kind(offset)), targets.c.target, targets.c.card_id, literal(offset),
        targets.c.expires_on, literal("skipped"), literal(REASON_RENEWED), literal(now, ReminderLog.created_at.type),
    )
    return len(_insert_log(rows, ["member_id", "kind", "target", "card_id", "offset_days", "expires_on", "outcome",
                                  "reason", "created_at"]))


def event_candidates(now: datetime, hours: float):
    """SELECT (member_id, event_id) of registered members of published events starting within ``hours``."""
    return (
        select(EventRegistration.member_id, EventRegistration.event_id)
        .join(Event, Event.id == EventRegistration.event_id)
        .join(Member, Member.id == EventRegistration.member_id)
        .where(
            Event.status == "upcoming",
            Event.start_at > now,
            Event.start_at <= now + timedelta(hours=hours),
            EventRegistration.status == "registered",
            Member.deleted_at.is_(None),
            Member.status.notin_(NO_MAIL_MEMBER_STATUSES),
        )
    )


def event_target(event_id: Any) -> Any:
    return literal("event-") + cast(event_id, String(40))


# --- the sweeps ----------------------------------------------------------------------------


def renewal_sweep(now: datetime) -> dict[str, int]:
    """Log and mail every renewal reminder due at ``now`` and not logged yet; flushes, never commits."""
    config = settings.current()
    today = local_today(now)
    catchup = max(1, int(current_app.config["REMINDER_CATCHUP_DAYS"]))
    ids: list[int] = []
    renewed = 0
    for offset in config.renewal_offsets:
        ids += _log_renewals(offset, today, now, catchup)
        renewed += _log_renewed(offset, today, now, catchup)
    counts = _deliver(ids, config, today)
    counts["renewed"] = renewed
    return counts


def event_sweep(now: datetime) -> dict[str, int]:
    """Log and mail every event reminder due at ``now`` and not logged yet; flushes, never commits."""
    config = settings.current()
    found = event_candidates(now, config.event_hours).subquery()
    rows = select(
        found.c.member_id, literal("event"), event_target(found.c.event_id), found.c.event_id, literal("mailed"),
        literal(""), literal(now, ReminderLog.created_at.type),
    )
    ids = _insert_log(rows, ["member_id", "kind", "target", "event_id", "outcome", "reason", "created_at"])
    return _deliver(ids, config, local_today(now))


# --- the messages --------------------------------------------------------------------------


def _when(offset: int) -> str:
    if offset < 0:
        return f"expires in {-offset} day{'s' if offset != -1 else ''}"
    if offset == 0:
        return "expires today"
    return f"expired {offset} day{'s' if offset != 1 else ''} ago"


def _format_day(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _format_start(at: datetime) -> str:
    local = at.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
    return f"{local.day} {local:%B %Y at %H:%M} ({current_app.config['TIMEZONE']})"


def _renewal_message(row: ReminderLog, config: settings.ReminderSettings) -> tuple[str, str, str, str]:
    """(mail kind, subject, text, absolute portal link) of a renewal reminder."""
    from app.services.mail import link_to
    card = row.card
    values = {"first_name": row.member.first_name, "org_name": current_app.config["ORG_NAME"],
              "card_number": card.card_number if card else "", "expires_on": _format_day(row.expires_on),
              "when": _when(row.offset_days or 0)}
    return RENEWAL_MAIL, fill(config.renewal_subject, values), fill(config.renewal_text, values), \
        link_to("portal.dues_page")


def _event_message(row: ReminderLog, config: settings.ReminderSettings) -> tuple[str, str, str, str]:
    from app.services.mail import link_to

    event = row.event
    values = {"first_name": row.member.first_name, "org_name": current_app.config["ORG_NAME"],
              "event_title": event.title, "event_start": _format_start(event.start_at),
              "event_place": ", ".join(p for p in (event.venue, event.location) if p) or "the venue"}
    return EVENT_MAIL, fill(config.event_subject, values), fill(config.event_text, values), \
        link_to("portal.event", event_id=event.id)


def mail_key(row: ReminderLog) -> str:
    """The outbox idempotency key of a log row's mail: its log key, so one reminder is one message."""
    return f"reminder:{row.member_id}:{row.kind}:{row.target}"


def _deliver(ids: list[int], config: settings.ReminderSettings, today: date) -> dict[str, int]:
    """Notify and mail the members of the log rows ``ids`` (just inserted); record each outcome on its row."""
    from app.services import mail  # late: the mail package imports app.security

    counts = {"due": len(ids), "mailed": 0, "opted_out": 0, "no_email": 0, "already_sent": 0, "not_sent": 0}
    if not ids:
        return counts
    notifications = _notifications()
    rows = db.session.scalars(
        select(ReminderLog).where(ReminderLog.id.in_(ids)).order_by(ReminderLog.id)
        .options(joinedload(ReminderLog.member), joinedload(ReminderLog.event), joinedload(ReminderLog.card))
    ).all()
    for row in rows:
        member = row.member
        is_event = row.kind == "event"
        kind, subject, text, path = (_event_message if is_event else _renewal_message)(row, config)
        notice = EVENT_NOTICE if is_event else RENEWAL_NOTICE
        if notifications is not None:
            notifications.notify(member, notice, subject, text, path)
        if not (member.email or "").strip():
            row.outcome, row.reason = "skipped", REASON_NO_EMAIL
            counts["no_email"] += 1
            continue
        if notifications is not None and not notifications.wants_email(member, notice):
            row.outcome, row.reason = "skipped", REASON_OPTED_OUT
            counts["opted_out"] += 1
            continue
        key = mail_key(row)
        earlier = db.session.scalar(select(MailMessage.id).where(MailMessage.idempotency_key == key))
        if earlier is not None:
            row.outcome, row.reason, row.mail_message_id = "skipped", f"{REASON_ALREADY_SENT} (message {earlier}).", earlier
            counts["already_sent"] += 1
            continue
        context = {"reminder_subject": subject, "reminder_text": text, "link": path, "row": row,
                   "event": row.event}
        if not is_event:  # "Renew now": straight to the tiers, no sign-in (a new link replaces the last one)
            context["renew_url"] = mail.link_to("portal.renew", token=renew_link_token(member))
        options: dict[str, Any] = {}
        if notifications is not None and hasattr(notifications, "unsubscribe_url"):
            context["unsubscribe_url"] = options["unsubscribe_url"] = notifications.unsubscribe_url(member, notice)
        message = _send(mail, kind, context, key, member, options)
        row.mail_message_id = message.id
        if message.status == "suppressed":
            row.outcome, row.reason = "skipped", message.reason or "Not sent."
            counts["not_sent"] += 1
        else:
            counts["mailed"] += 1
    db.session.flush()
    return counts


def _send(mail, kind: str, context: dict[str, Any], key: str, member: Member, options: dict[str, Any]):
    """``send_mail`` as bulk mail (rate limited), with the unsubscribe link (List-Unsubscribe headers)."""
    return mail.send_mail(kind, None, context, key=key, member=member, bulk=True, **options)


__all__ = ["event_sweep", "renewal_sweep", "settings"]
