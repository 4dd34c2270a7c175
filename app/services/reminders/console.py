"""What the console's "Reminders" page reads: the schedule ahead and the delivery log, in the viewer's scope.

Both are member data: staff see the reminders of members they may read
(``members.read`` over the member's unit, through app/security.py's
``scope_filter``); nothing here writes. The schedule is computed from the
same rules as the sweeps (the member's latest card, the offsets and hours in
force), minus what the log already holds, so it says who will get what, when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, select, union_all
from sqlalchemy.orm import joinedload

from app.database import add_days
from app.extensions import db
from app.models import Event, EventRegistration, MailMessage, Member, MembershipCard, ReminderLog
from app.security import scope_filter
from app.services import reminders
from app.services.reminders import settings

READ = "members.read"
SCHEDULE_DAYS = 30


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _scope(actor: Any):
    return scope_filter(actor, READ, Member)


def renewals_ahead(actor: Any, now: datetime, page: int = 0, page_size: int = 25,
                   days: int = SCHEDULE_DAYS) -> Page:
    """Renewal reminders due from today to ``days`` ahead and not logged yet, soonest first."""
    config = settings.current()
    today = reminders.local_today(now)
    last = today + timedelta(days=days)
    branches = []
    for offset in config.renewal_offsets:
        kind = reminders.renewal_kind(offset)
        logged = select(ReminderLog.id).where(
            ReminderLog.member_id == MembershipCard.member_id, ReminderLog.kind == kind,
            ReminderLog.target == cast(MembershipCard.expires_on, String(40)),
        ).exists()
        stmt = (
            reminders.renewal_candidates(offset, today, last)
            .add_columns(add_days(MembershipCard.expires_on, offset).label("due_on"), literal(offset).label("offset"))
            .where(~logged)
        )
        clause = _scope(actor)
        branches.append(stmt if clause is None else stmt.where(clause))
    if not branches:
        return Page([], 0, page, page_size)
    ahead = union_all(*branches).subquery()
    total = db.session.scalar(select(func.count()).select_from(ahead)) or 0
    found = db.session.execute(
        select(ahead).order_by(ahead.c.due_on, ahead.c.member_id, ahead.c.offset)
        .limit(page_size).offset(page * page_size)
    ).all()
    members = {m.id: m for m in db.session.scalars(
        select(Member).where(Member.id.in_({r.member_id for r in found})).options(joinedload(Member.unit)))}
    cards = {c.id: c for c in db.session.scalars(
        select(MembershipCard).where(MembershipCard.id.in_({r.card_id for r in found})))}
    rows = [{"due_on": _as_date(r.due_on), "member": members[r.member_id], "card": cards[r.card_id],
             "offset": r.offset, "when": reminders._when(r.offset), "expires_on": r.expires_on} for r in found]
    return Page(rows, total, page, page_size)


def _as_date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def events_ahead(actor: Any, now: datetime, page: int = 0, page_size: int = 25,
                 days: int = SCHEDULE_DAYS) -> Page:
    """Event reminders due from now to ``days`` ahead (not sent yet), soonest first."""
    config = settings.current()
    hours = timedelta(hours=config.event_hours)
    logged = select(ReminderLog.id).where(
        ReminderLog.member_id == EventRegistration.member_id, ReminderLog.kind == "event",
        ReminderLog.event_id == EventRegistration.event_id,
    ).exists()
    stmt = (
        select(EventRegistration)
        .join(Event, Event.id == EventRegistration.event_id)
        .join(Member, Member.id == EventRegistration.member_id)
        .where(Event.status == "upcoming", Event.start_at > now, Event.start_at <= now + hours + timedelta(days=days),
               EventRegistration.status == "registered", Member.deleted_at.is_(None),
               Member.status.notin_(reminders.NO_MAIL_MEMBER_STATUSES), ~logged)
    )
    clause = _scope(actor)
    if clause is not None:
        stmt = stmt.where(clause)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    found = db.session.scalars(
        stmt.order_by(Event.start_at, EventRegistration.id).limit(page_size).offset(page * page_size)
        .options(joinedload(EventRegistration.event), joinedload(EventRegistration.member))
    ).all()
    rows = [{"due_at": max(now, r.event.start_at - hours), "member": r.member, "event": r.event} for r in found]
    return Page(rows, total, page, page_size)


OUTCOME_FILTERS = ("mailed", "skipped", "sent", "queued", "failed")


def delivery_log(actor: Any, page: int = 0, page_size: int = 25, outcome: str = "") -> Page:
    """The sent log, newest first, each row with its mail (whose status says sent, queued or failed)."""
    stmt = select(ReminderLog).join(Member, Member.id == ReminderLog.member_id)
    clause = _scope(actor)
    if clause is not None:
        stmt = stmt.where(clause)
    if outcome in ("mailed", "skipped"):
        stmt = stmt.where(ReminderLog.outcome == outcome)
    elif outcome in ("sent", "queued", "failed"):
        stmt = stmt.join(MailMessage, MailMessage.id == ReminderLog.mail_message_id).where(
            and_(ReminderLog.outcome == "mailed", MailMessage.status == outcome))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.order_by(ReminderLog.created_at.desc(), ReminderLog.id.desc()).limit(page_size).offset(page * page_size)
        .options(joinedload(ReminderLog.member), joinedload(ReminderLog.event), joinedload(ReminderLog.mail_message))
    ).all()
    return Page(list(rows), total, page, page_size)


def status_of(row: ReminderLog) -> tuple[str, str]:
    """(status, why) of a log row as the console shows it: sent, queued, failed after retries, or not sent."""
    if row.outcome == "skipped":
        return "not sent", row.reason
    message = row.mail_message
    if message is None:
        return "not sent", "The mail was deleted."
    if message.status == "failed":
        return "failed", f"Failed after retries: {message.reason}" if message.attempts > 1 else message.reason
    if message.status == "suppressed":
        return "not sent", message.reason
    return message.status, message.reason if message.status == "queued" else ""
