"""Referral figures: leaderboards by member and by unit, the funnel, referrals per week, ranks.

Every figure is a GROUP BY in the database, never a loop over members. Points
always come from the ledger (``referral_rewards``: a balance is the sum of
its entries), counts from ``referrals``.

Scope: staff see the referrals whose *referrer* belongs to a unit in their
``referrals.read`` scope (as ``app.security`` scopes ``Referral``), narrowed
to one unit's subtree when one is asked for (``area``). A coordinator's
leaderboard is therefore their wards' recruiters and nobody else's. Only
live members (not deleted) are ranked, and only live members' referrals are
counted.

Two plans, one answer. For an area (a subtree), the area's live members are
found first (``ix_members_live_unit_id``) and their referrals and ledger
entries looked up by member (``ix_referrals_referrer_funnel``,
``ix_referral_rewards_member_points``). For the whole organisation that
would mean checking a million members one by one, so the figures are taken
over every referral and ledger entry (covering indexes, no table rows read)
and the few deleted members' share is left out through
``ix_members_deleted_id``: the organisation's leaderboard and funnel stay
under 300 ms at 1,000,000 members and 300,000 referrals (bench/referrals.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, case, func, literal, select

from app.database import in_values, utc_date
from app.extensions import db
from app.models import Member, PointsEntry, Referral, Unit
from app.models.base import utcnow
from app.security import authorize, can, reaches, scope_unit_ids
from app.services.errors import Forbidden, NotFound
from app.services.inputs import parse_id

PERMISSION = "referrals.read"
FUNNEL_STAGES = ("recorded", "registered", "credited")
WEEKS = 12
TOP_PER_UNIT = 3


@dataclass(frozen=True)
class Area:
    """Where the figures are taken: ``unit_ids`` None means the whole organisation."""

    unit: Unit | None
    unit_ids: list[int] | None

    def member_clause(self) -> ColumnElement[bool] | None:
        return in_values(Member.unit_id, self.unit_ids) if self.unit_ids is not None else None


def area(actor: Any, unit_id: Any = None) -> Area:
    """The actor's reach for referral figures, within ``unit_id``'s subtree when one is given.

    A unit outside the actor's sight answers ``NotFound``; one they see
    without ``referrals.read`` there, ``Forbidden`` (the ``authorize`` rule).
    """
    scope = scope_unit_ids(actor, PERMISSION) if actor is not None else None
    if actor is not None and scope is not None and not scope:
        raise Forbidden("You may not see referral figures.", permission=PERMISSION)
    if unit_id in (None, ""):
        return Area(None, scope)
    pk = parse_id(unit_id)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None:
        raise NotFound()
    if actor is not None and not can(actor, PERMISSION, unit):
        if not reaches(actor, unit):
            raise NotFound()
        authorize(actor, PERMISSION, unit)  # raises Forbidden with the usual words
    subtree = list(db.session.scalars(select(Unit.id).where(Unit.path.startswith(unit.path))))
    if scope is not None:
        allowed = set(scope)
        subtree = [u for u in subtree if u in allowed]
    return Area(unit, subtree)


def _live_members(where: Area) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [Member.deleted_at.is_(None)]
    clause = where.member_clause()
    if clause is not None:
        clauses.append(clause)
    return clauses


def _deleted_members():
    """Ids of deleted members: few, an index range (``ix_members_deleted_id``), never a scan of members."""
    return select(Member.id).where(Member.deleted_at.is_not(None))


def _everywhere(where: Area) -> bool:
    """The whole organisation (no unit filter): figures over every row, less the deleted members' share."""
    return where.unit_ids is None


# --- the funnel -------------------------------------------------------------------------


@dataclass
class Funnel:
    recorded: int = 0
    registered: int = 0
    credited: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def rate(self, stage: str) -> float | None:
        """The share of recorded referrals that reached ``stage`` (None when nothing was recorded)."""
        return round(getattr(self, stage) / self.recorded, 4) if self.recorded else None


def _funnel_rows(*where: ColumnElement[bool], join_members: bool = False):
    """(status, referrals, of them registered, of them credited) for the referrals matching ``where``."""
    stmt = select(Referral.status, func.count(), func.count(Referral.registered_at), func.count(Referral.credited_at))
    if join_members:
        stmt = stmt.join(Member, Member.id == Referral.referrer_id)
    return db.session.execute(stmt.where(*where).group_by(Referral.status)).all()


def funnel(where: Area) -> Funnel:
    """Recorded -> registered (the person joined) -> credited (they became active), and counts by status.

    A stage counts referrals that ever reached it (``registered_at``,
    ``credited_at``), so a credit reversed later still shows it was earned
    once; ``by_status`` is where they are now. Referrals of deleted members
    are not counted.
    """
    totals: dict[str, list[int]] = {}
    if _everywhere(where):
        # Every referral (one pass over ix_referrals_status_funnel), less those of deleted referrers.
        for status, *counts in _funnel_rows():
            totals[status] = [int(n) for n in counts]
        for status, *counts in _funnel_rows(Referral.referrer_id.in_(_deleted_members())):
            totals[status] = [a - int(b) for a, b in zip(totals[status], counts)]
    else:
        for status, *counts in _funnel_rows(*_live_members(where), join_members=True):
            totals[status] = [int(n) for n in counts]
    result = Funnel()
    for status, (total, registered, credited) in totals.items():
        if total:
            result.by_status[status] = total
        result.recorded += total
        result.registered += registered
        result.credited += credited
    return result


# --- leaderboards -----------------------------------------------------------------------


@dataclass
class Recruiter:
    member_id: int
    name: str
    membership_number: str
    unit_id: int
    unit_name: str
    points: int
    credited: int = 0
    registered: int = 0
    recorded: int = 0
    rank: int = 0


def _points_by_member(where: Area, *, live_only: bool = True):
    """``(member_id, points)`` for members in the area with a positive balance, live ones.

    For the whole organisation, ``live_only=False`` gives every member's
    (deleted ones too) from the ledger alone (ix_referral_rewards_member_points,
    in member order): the caller leaves the few deleted out
    (``_deleted_balances``) instead of checking every group.
    """
    total = func.sum(PointsEntry.points)
    if _everywhere(where):
        stmt = select(PointsEntry.member_id.label("member_id"), total.label("points")).group_by(PointsEntry.member_id)
        if live_only:
            return stmt.having(total > 0, PointsEntry.member_id.not_in(_deleted_members()))
        return stmt.having(total > 0)
    return (select(PointsEntry.member_id.label("member_id"), total.label("points"))
            .join(Member, Member.id == PointsEntry.member_id).where(*_live_members(where))
            .group_by(PointsEntry.member_id).having(total > 0))


def _deleted_balances() -> dict[int, int]:
    """Deleted members with a positive balance: their ledger entries looked up by member, a few."""
    total = func.sum(PointsEntry.points)
    return {mid: int(points) for mid, points in db.session.execute(
        select(PointsEntry.member_id, total).where(PointsEntry.member_id.in_(_deleted_members()))
        .group_by(PointsEntry.member_id).having(total > 0))}


def _counts_for(member_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """A recruiter's own counts, for a page of a leaderboard: (credited, registered, recorded).

    Over their referrals that still stand (not rejected: a rejected join, a
    lost duplicate or a reversed credit is left out): credited now, those
    whose person joined (``registered_at``), and all of them. One statement
    over ``ix_referrals_referrer_funnel``. (The funnel and the unit
    leaderboard count every referral, rejected ones too: a stage reached once
    stays reached there.)
    """
    if not member_ids:
        return {}
    stmt = (select(Referral.referrer_id,
                   func.count(case((Referral.status == "credited", 1))), func.count(Referral.registered_at),
                   func.count())
            .where(in_values(Referral.referrer_id, member_ids), Referral.status != "rejected")
            .group_by(Referral.referrer_id))
    return {rid: (int(credited), int(registered), int(n)) for rid, credited, registered, n in db.session.execute(stmt)}


def _recruiters(rows: list[tuple[int, int, int]]) -> list[Recruiter]:
    """Recruiters for ``(member_id, points, rank)`` rows, in that order, with names, units and counts."""
    ids = [member_id for member_id, _points, _rank in rows]
    if not ids:
        return []
    people = {r.id: r for r in db.session.execute(
        select(Member.id, Member.first_name, Member.last_name, Member.membership_number, Member.unit_id, Unit.name)
        .join(Unit, Unit.id == Member.unit_id).where(in_values(Member.id, ids)))}
    counts = _counts_for(ids)
    out = []
    for member_id, points, rank in rows:
        p = people[member_id]
        credited, registered, recorded = counts.get(member_id, (0, 0, 0))
        out.append(Recruiter(member_id, f"{p.first_name} {p.last_name}", p.membership_number, p.unit_id, p.name,
                             int(points), credited, registered, recorded, rank))
    return out


def leaderboard(where: Area, *, limit: int = 20, offset: int = 0) -> tuple[list[Recruiter], int]:
    """Recruiters by points (ties by member id), one page and how many are ranked in all.

    Ranks are competition ranks ("1, 2, 2, 4"): a member's rank is one more
    than the number of members with more points, the same rule ``ranks_of``
    gives a member about themselves. The balances are summed once (a CTE
    that the page and the count both read); the rows down to the end of the
    page come back in order and the ranks follow from that order. For the
    whole organisation the deleted members with points (a few) are taken out
    here rather than checked group by group in the database.
    """
    offset, limit = max(0, int(offset)), max(0, int(limit))
    everywhere = _everywhere(where)
    deleted = _deleted_balances() if everywhere else {}
    points = _points_by_member(where, live_only=not everywhere).cte("points")
    depth = offset + limit + len(deleted)
    if depth >= 2**62:  # an absurd offset (from an API query): no page there, only the total
        depth = offset = limit = 0
    stmt = (select(points.c.member_id, points.c.points,
                   select(func.count()).select_from(points).scalar_subquery().label("total"))
            .order_by(points.c.points.desc(), points.c.member_id)
            .limit(max(1, depth)))  # at least one row: it carries the total
    prefix = db.session.execute(stmt).all()
    if not prefix:
        return [], 0
    rows: list[tuple[int, int, int]] = []
    place, rank, previous = 0, 0, None
    for member_id, member_points, _total in prefix:
        if member_id in deleted:
            continue
        place += 1
        if place > offset + limit:
            break
        if member_points != previous:
            rank, previous = place, member_points
        if place > offset:
            rows.append((member_id, int(member_points), rank))
    return _recruiters(rows), int(prefix[0].total) - len(deleted)


@dataclass
class UnitFigures:
    unit_id: int
    name: str
    level: int
    level_name: str
    points: int = 0
    recorded: int = 0
    registered: int = 0
    credited: int = 0
    recruiters: int = 0
    rank: int = 0


def levels_below(where: Area) -> list[tuple[int, str]]:
    """The levels a unit leaderboard can group by: (level, name), from the area's unit down (or the top)."""
    start = where.unit.level + 1 if where.unit is not None else 0
    levels = current_app.config["UNIT_LEVELS"]
    present = db.session.scalars(select(Unit.level).distinct()).all()
    return [(lvl, levels[lvl] if lvl < len(levels) else f"level {lvl + 1}") for lvl in sorted(present) if lvl >= start]


def _by_member_unit(where: Area) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int, int]]]:
    """Per unit of the members: (points, recruiters) and (recorded, registered, credited).

    Summed per member first (the ledger and ``referrals`` by member, from
    their covering indexes), then per unit through the members' units: two
    statements, whatever the number of members.
    """
    in_area = None if _everywhere(where) else select(Member.id).where(*_live_members(where))
    per_member = select(PointsEntry.member_id.label("member_id"), func.sum(PointsEntry.points).label("points"))
    if in_area is not None:  # an area: its members' entries only, looked up by member
        per_member = per_member.where(PointsEntry.member_id.in_(in_area))
    per_member = per_member.group_by(PointsEntry.member_id).subquery()
    points = {unit_id: (int(total or 0), int(recruiters)) for unit_id, total, recruiters in db.session.execute(
        select(Member.unit_id, func.sum(per_member.c.points), func.count(case((per_member.c.points > 0, 1))))
        .join(Member, Member.id == per_member.c.member_id).where(*_live_members(where))
        .group_by(Member.unit_id))}
    per_referrer = (select(Referral.referrer_id.label("member_id"), func.count().label("n"),
                           func.count(Referral.registered_at).label("registered"),
                           func.count(Referral.credited_at).label("credited"))
                    .group_by(Referral.referrer_id))
    if in_area is not None:
        per_referrer = per_referrer.where(Referral.referrer_id.in_(in_area))
    per_referrer = per_referrer.subquery()
    counts = {unit_id: (int(n), int(reg), int(cred)) for unit_id, n, reg, cred in db.session.execute(
        select(Member.unit_id, func.sum(per_referrer.c.n), func.sum(per_referrer.c.registered),
               func.sum(per_referrer.c.credited))
        .join(Member, Member.id == per_referrer.c.member_id).where(*_live_members(where))
        .group_by(Member.unit_id))}
    return points, counts


def unit_leaderboard(where: Area, level: int) -> list[UnitFigures]:
    """Units of ``level`` ranked by their members' points, with the funnel's counts per unit.

    Figures are grouped by the referrer's own unit in the database, then
    rolled up to the ancestor at ``level`` with the (small) unit tree.
    """
    points, counts = _by_member_unit(where)
    level_name = dict(levels_below(Area(None, None))).get(level, f"level {level + 1}")
    wanted = db.session.execute(select(Unit.id, Unit.name).where(Unit.level == level)).all()
    figures = {uid: UnitFigures(uid, name, level, level_name) for uid, name in wanted}
    touched = set(points) | set(counts)
    if touched:
        paths = dict(db.session.execute(select(Unit.id, Unit.path).where(in_values(Unit.id, list(touched)))).all())
        for unit_id in touched:
            for ancestor in (int(p) for p in paths.get(unit_id, "").strip("/").split("/") if p):
                row = figures.get(ancestor)
                if row is None:
                    continue
                unit_points, recruiters = points.get(unit_id, (0, 0))
                recorded, registered, credited = counts.get(unit_id, (0, 0, 0))
                row.points += unit_points
                row.recruiters += recruiters
                row.recorded += recorded
                row.registered += registered
                row.credited += credited
    if where.unit_ids is not None:
        allowed = _units_touching(where)
        figures = {uid: row for uid, row in figures.items() if uid in allowed}
    rows = sorted(figures.values(), key=lambda r: (-r.points, -r.credited, r.name))
    for index, row in enumerate(rows):
        row.rank = index + 1 if index == 0 or rows[index - 1].points != row.points else rows[index - 1].rank
    return rows


def _units_touching(where: Area) -> set[int]:
    """Units in the area or above units in it (a coordinator of two wards sees their constituency's row)."""
    ids = set(where.unit_ids or [])
    if not ids:
        return set()
    out: set[int] = set()
    for path in db.session.scalars(select(Unit.path).where(in_values(Unit.id, list(ids)))):
        out.update(int(p) for p in path.strip("/").split("/") if p)
    if where.unit is not None:  # nothing above the area's own unit
        above = {int(p) for p in where.unit.path.strip("/").split("/") if p} - {where.unit.id}
        out -= above
    return out


def top_per_unit(where: Area, *, per_unit: int = TOP_PER_UNIT, level: int | None = None
                 ) -> dict[int, list[Recruiter]]:
    """The best ``per_unit`` recruiters of each unit at the lowest level (wards): one windowed query.

    ``rank`` is the member's competition rank in their unit (ties share it,
    as in ``leaderboard`` and ``ranks_of``, so a member sees the same rank
    here and in the portal); the cut at ``per_unit`` is by place (ties broken
    by member id), so a unit lists at most ``per_unit`` members.
    """
    del level  # recruiters belong to the units they are members of, the wards
    points = _points_by_member(where).subquery()
    order = (points.c.points.desc(), points.c.member_id)
    place = func.row_number().over(partition_by=Member.unit_id, order_by=order).label("place")
    rank = func.rank().over(partition_by=Member.unit_id, order_by=points.c.points.desc()).label("rank")
    ranked = (select(Member.unit_id, points.c.member_id, points.c.points, place, rank)
              .join(Member, Member.id == points.c.member_id)).subquery()
    rows = db.session.execute(select(ranked.c.unit_id, ranked.c.member_id, ranked.c.points, ranked.c.rank)
                              .where(ranked.c.place <= per_unit)
                              .order_by(ranked.c.unit_id, ranked.c.place)).all()
    out: dict[int, list[Recruiter]] = {}
    for recruiter in _recruiters([(r.member_id, int(r.points), int(r.rank)) for r in rows]):
        out.setdefault(recruiter.unit_id, []).append(recruiter)
    return out


# --- over time --------------------------------------------------------------------------


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def per_week(where: Area, *, weeks: int = WEEKS, today: date | None = None) -> list[tuple[date, int, int]]:
    """(Monday, referrals recorded, referrals credited) for each of the last ``weeks`` weeks, oldest first.

    Weeks are UTC weeks (Monday to Sunday) up to and including ``today``:
    nothing after ``today`` counts, so a report for a past day is what it
    was that day. Grouped by day in the database (portable, and at most
    7 x weeks rows), folded into weeks here.
    """
    today = today or utcnow().date()
    first = week_start(today) - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), timezone.utc)
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), timezone.utc)  # up to today, inclusive
    recorded: dict[date, int] = {}
    credited: dict[date, int] = {}
    for column, bucket in ((Referral.created_at, recorded), (Referral.credited_at, credited)):
        day = utc_date(column)
        stmt = select(day, func.count()).where(column >= since, column < until)
        if _everywhere(where):  # every referral of those weeks, less the deleted members' (few)
            parts = [(stmt, 1), (stmt.where(Referral.referrer_id.in_(_deleted_members())), -1)]
        else:
            parts = [(stmt.join(Member, Member.id == Referral.referrer_id).where(*_live_members(where)), 1)]
        for part, sign in parts:
            for value, n in db.session.execute(part.group_by(day)):
                when = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
                key = week_start(when)
                bucket[key] = bucket.get(key, 0) + sign * int(n)
    return [(first + timedelta(weeks=k), recorded.get(first + timedelta(weeks=k), 0),
             credited.get(first + timedelta(weeks=k), 0)) for k in range(weeks)]


# --- a member's own standing ------------------------------------------------------------


@dataclass(frozen=True)
class Rank:
    unit: Unit
    rank: int | None  # None: no points yet
    of: int  # live active members in the unit


def _rank_in(member: Member, unit: Unit, points: int) -> Rank:
    unit_ids = list(db.session.scalars(select(Unit.id).where(Unit.path.startswith(unit.path))))
    members_here = and_(Member.deleted_at.is_(None), in_values(Member.unit_id, unit_ids))
    of = db.session.scalar(select(func.count()).select_from(Member).where(members_here, Member.status == "active")) or 0
    if points <= 0:
        return Rank(unit, None, int(of))
    total = func.sum(PointsEntry.points)
    ahead = (select(literal(1)).select_from(PointsEntry).join(Member, Member.id == PointsEntry.member_id)
             .where(members_here).group_by(PointsEntry.member_id).having(total > points)).subquery()
    return Rank(unit, int(db.session.scalar(select(func.count()).select_from(ahead)) or 0) + 1, int(of))


def ranks_of(member: Member, points: int) -> list[Rank]:
    """The member's rank in their own unit (ward) and in the unit above it (constituency): competition ranks."""
    units = [member.unit]
    if member.unit.parent is not None:
        units.append(member.unit.parent)
    return [_rank_in(member, unit, points) for unit in units]
