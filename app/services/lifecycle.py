"""The status rules that run on the clock: the sweeps the scheduler calls (app/scheduler/sweeps.py).

Each sweep is ``(now) -> dict[str, int]``: it finds everything due at ``now``
with set-based statements (UPDATE ... WHERE, INSERT ... SELECT for the
history and audit rows, never a Python loop over rows), so its number of
statements does not grow with the number of rows; it flushes, never
commits (the scheduler's job, ``flask jobs run`` or ``flask cards expire``
commits), and running it again, late or twice changes nothing.

The rules, by internal name (stored in ``rule`` of card transactions and
member status changes, and in the audit entries' changes; labels can change,
these do not):

- ``card.past_grace`` (``cards.expire_cards``): an active card is in grace
  for CARD_GRACE_DAYS after its expiry date (derived from the dates: it
  verifies as "in grace", admits at the door, renews), then expires.
  Lifetime cards have no expiry date and never expire.
- ``member.lapsed_after_grace`` (``lapse_members``): an active member whose
  latest card expired past its grace period lapses.
- ``member.renewed`` (``cards.renew_card``): renewing the card of a member
  this rule lapsed makes them active again.
- ``registration.no_show`` (``events.mark_no_shows``): registrations of
  events that ended NO_SHOW_AFTER_HOURS ago without a check-in.
- abandoned uploads (``imports.delete_abandoned_uploads``,
  ``imports.cleanup_uploads``): never imported and older than
  IMPORT_UPLOAD_TTL_HOURS: row and file deleted; imported ones lose the file.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import String, and_, cast, literal, select, update

from app.database import in_values
from app.extensions import db
from app.models import AuditEntry, Member, MembershipCard, MemberStatusChange
from app.models.cards import grace_days
from app.services.cards import lifecycle as card_lifecycle
from app.services.cards.lifecycle import RULE_LAPSED, RULE_PAST_GRACE, RULE_RENEWED, expire_cards
from app.services.events.attendance import NO_SHOW_RULE, mark_no_shows
from app.services.imports.uploads import cleanup_uploads, delete_abandoned_uploads

RULES = (RULE_PAST_GRACE, RULE_LAPSED, RULE_RENEWED, NO_SHOW_RULE)


def _today(now: datetime) -> date:
    """The day ``now`` falls on (UTC, as the sweeps' clock): expiry dates are compared with it."""
    return now.date()


def lapse_members(today: date, now: datetime) -> int:
    """RULE_LAPSED: active members whose latest card expired past its grace period become lapsed; how many.

    "Latest" is the member's newest card (a reissued card replaces the old
    one); a member without a card, or whose latest card is revoked,
    suspended, active, in grace or lifetime, is left alone. Set-based: the
    status changes and audit entries by INSERT ... SELECT, then one UPDATE.
    The card does not change (it is already expired); renewal reverses it.
    """
    grace = grace_days()
    reason = card_lifecycle.past_grace_reason(grace)
    db.session.flush()
    members, cards = Member.__table__, MembershipCard.__table__
    newer = cards.alias("newer")
    # From the expired cards (an index range), not from every active member: members whose newest
    # card is one of them.
    latest_expired = select(cards.c.member_id).where(
        cards.c.status == "expired", cards.c.expires_on < today - timedelta(days=grace),
        ~select(newer.c.id).where(newer.c.member_id == cards.c.member_id, newer.c.id > cards.c.id).exists())
    due = and_(members.c.status == "active", members.c.deleted_at.is_(None), members.c.id.in_(latest_expired))
    if db.session.get_bind().dialect.name == "postgresql":
        # Find and lock the set once; the three writes then go by id (an index lookup each),
        # instead of each scanning the members again. (SQLite serialises writers: no lock needed.)
        ids = list(db.session.scalars(select(members.c.id).where(due).with_for_update()))
        if not ids:
            return 0
        due = in_values(members.c.id, ids)
    changes_table, audit_table = MemberStatusChange.__table__, AuditEntry.__table__
    db.session.execute(changes_table.insert().from_select(
        ["member_id", "from_status", "to_status", "reason", "rule", "actor_id", "changed_at"],
        select(members.c.id, literal("active"), literal("lapsed"), literal(reason), literal(RULE_LAPSED),
               literal(None, type_=changes_table.c.actor_id.type),
               literal(now, type_=changes_table.c.changed_at.type)).where(due)))
    changes = {"status": {"before": "active", "after": "lapsed"}, "reason": reason, "rule": RULE_LAPSED}
    db.session.execute(audit_table.insert().from_select(
        ["at", "actor_id", "action", "object_type", "object_id", "unit_id", "summary", "changes"],
        select(literal(now, type_=audit_table.c.at.type), literal(None, type_=audit_table.c.actor_id.type),
               literal("member.status"), literal("Member"), cast(members.c.id, String), members.c.unit_id,
               members.c.first_name + literal(" ") + members.c.last_name + f": active -> lapsed ({reason})",
               literal(changes, type_=audit_table.c.changes.type)).where(due)))
    count = db.session.execute(
        update(members).where(due).values(status="lapsed", updated_by_id=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0
    if count:
        card_lifecycle.expire_loaded(Member)
    return count


def expire_sweep(now: datetime) -> dict[str, int]:
    """Cards past their date and grace expire; members whose latest card so expired lapse (in that order)."""
    today = _today(now)
    expired = expire_cards(today, now=now)
    lapsed = lapse_members(today, now)
    return {"cards_expired": expired, "members_lapsed": lapsed}


def no_show_sweep(now: datetime) -> dict[str, int]:
    """Registrations of events that ended NO_SHOW_AFTER_HOURS before ``now`` without a check-in: no_show."""
    margin = timedelta(hours=float(current_app.config.get("NO_SHOW_AFTER_HOURS", 2)))
    return {"no_shows": mark_no_shows(None, now=now, ended_before=now - margin)}


def upload_cleanup_sweep(now: datetime) -> dict[str, int]:
    """Uploads never imported and older than IMPORT_UPLOAD_TTL_HOURS go (row and file); the others' files."""
    rows, files = delete_abandoned_uploads(now)
    return {"uploads_deleted": rows, "files_deleted": files + cleanup_uploads(now)}
