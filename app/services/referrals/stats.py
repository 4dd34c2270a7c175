"""Referral figures: leaderboards by member and by unit, the funnel, referrals per week, ranks.

Every figure is a GROUP BY in the database, never a loop over members: at a
million members and hundreds of thousands of referrals the organisation's
leaderboard and funnel are each one statement. Points always come from the
ledger (``referral_rewards``: a balance is the sum of its entries), counts
from ``referrals``.

Scope: staff see the referrals whose *referrer* belongs to a unit in their
``referrals.read`` scope (as ``app.security`` scopes ``Referral``), narrowed
to one unit's subtree when one is asked for (``area``). A coordinator's
leaderboard is therefore their wards' recruiters and nobody else's. Only
live members (not deleted) are ranked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, literal, select

from app.database import in_values
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


def funnel(where: Area) -> Funnel:
    """Recorded -> registered (the person joined) -> credited (they became active), and counts by status.

    A stage counts referrals that ever reached it (``registered_at``,
    ``credited_at``), so a credit reversed later still shows it was earned
    once; ``by_status`` is where they are now.
    """
    stmt = (select(Referral.status, func.count(), func.count(Referral.registered_at), func.count(Referral.credited_at))
            .join(Member, Member.id == Referral.referrer_id).where(*_live_members(where))
            .group_by(Referral.status))
    result = Funnel()
    for status, total, registered, credited in db.session.execute(stmt):
        result.by_status[status] = int(total)
        result.recorded += int(total)
        result.registered += int(registered)
        result.credited += int(credited)
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


def _points_by_member(where: Area):
    """``(member_id, points)`` for live members in the area with a positive balance."""
    total = func.sum(PointsEntry.points)
    return (select(PointsEntry.member_id.label("member_id"), total.label("points"))
            .join(Member, Member.id == PointsEntry.member_id).where(*_live_members(where))
            .group_by(PointsEntry.member_id).having(total > 0))


def _counts_for(member_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """(credited now, ever registered, recorded) per referrer, for a page of the leaderboard."""
    if not member_ids:
        return {}
    stmt = (select(Referral.referrer_id, func.count(Referral.credited_at), func.count(Referral.registered_at),
                   func.count())
            .where(in_values(Referral.referrer_id, member_ids), Referral.status != "rejected")
            .group_by(Referral.referrer_id))
    credited_now = dict(db.session.execute(
        select(Referral.referrer_id, func.count()).where(in_values(Referral.referrer_id, member_ids),
                                                         Referral.status == "credited")
        .group_by(Referral.referrer_id)).all())
    return {rid: (int(credited_now.get(rid, 0)), int(reg), int(n)) for rid, _c, reg, n in db.session.execute(stmt)}


def leaderboard(where: Area, *, limit: int = 20, offset: int = 0) -> tuple[list[Recruiter], int]:
    """Recruiters by points (then by fewest members ahead: ties share a rank), one page and the total.

    Ranks are competition ranks ("1, 2, 2, 4"): a member's rank is one more
    than the number of members with more points, the same rule ``ranks_of``
    gives a member about themselves.
    """
    points = _points_by_member(where).subquery()
    total = db.session.scalar(select(func.count()).select_from(points)) or 0
    rank = func.rank().over(order_by=points.c.points.desc())
    ranked = (select(points.c.member_id, points.c.points, rank.label("rank"))
              .order_by(points.c.points.desc(), points.c.member_id).offset(offset).limit(limit)).subquery()
    rows = db.session.execute(
        select(ranked.c.member_id, ranked.c.points, ranked.c.rank, Member.first_name, Member.last_name,
               Member.membership_number, Member.unit_id, Unit.name)
        .join(Member, Member.id == ranked.c.member_id).join(Unit, Unit.id == Member.unit_id)
        .order_by(ranked.c.points.desc(), ranked.c.member_id)).all()
    counts = _counts_for([r.member_id for r in rows])
    out = []
    for r in rows:
        credited, registered, recorded = counts.get(r.member_id, (0, 0, 0))
        out.append(Recruiter(r.member_id, f"{r.first_name} {r.last_name}", r.membership_number, r.unit_id, r.name,
                             int(r.points), credited, registered, recorded, int(r.rank)))
    return out, int(total)


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


def unit_leaderboard(where: Area, level: int) -> list[UnitFigures]:
    """Units of ``level`` ranked by their members' points, with the funnel's counts per unit.

    Figures are grouped by the referrer's own unit in the database, then
    rolled up to the ancestor at ``level`` with the (small) unit tree: two
    GROUP BYs however many members there are.
    """
    member_where = _live_members(where)
    by_unit_points = dict(db.session.execute(
        select(Member.unit_id, func.sum(PointsEntry.points)).join(Member, Member.id == PointsEntry.member_id)
        .where(*member_where).group_by(Member.unit_id)).all())
    positive = _points_by_member(where).subquery()
    recruiters = dict(db.session.execute(
        select(Member.unit_id, func.count()).join(positive, positive.c.member_id == Member.id)
        .group_by(Member.unit_id)).all())
    counts = {unit_id: (int(n), int(reg), int(cred)) for unit_id, n, reg, cred in db.session.execute(
        select(Member.unit_id, func.count(), func.count(Referral.registered_at), func.count(Referral.credited_at))
        .join(Member, Member.id == Referral.referrer_id).where(*member_where).group_by(Member.unit_id))}
    level_name = dict(levels_below(Area(None, None))).get(level, f"level {level + 1}")
    wanted = db.session.execute(select(Unit.id, Unit.name).where(Unit.level == level)).all()
    figures = {uid: UnitFigures(uid, name, level, level_name) for uid, name in wanted}
    touched = set(by_unit_points) | set(counts) | set(recruiters)
    if touched:
        paths = dict(db.session.execute(select(Unit.id, Unit.path).where(in_values(Unit.id, list(touched)))).all())
        for unit_id in touched:
            for ancestor in (int(p) for p in paths.get(unit_id, "").strip("/").split("/") if p):
                row = figures.get(ancestor)
                if row is None:
                    continue
                row.points += int(by_unit_points.get(unit_id, 0) or 0)
                recorded, registered, credited = counts.get(unit_id, (0, 0, 0))
                row.recorded += recorded
                row.registered += registered
                row.credited += credited
                row.recruiters += int(recruiters.get(unit_id, 0))
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
    """The best ``per_unit`` recruiters of each unit at the lowest level (wards): one windowed query."""
    del level  # recruiters belong to the units they are members of, the wards
    points = _points_by_member(where).subquery()
    place = func.row_number().over(partition_by=Member.unit_id,
                                   order_by=(points.c.points.desc(), points.c.member_id)).label("place")
    ranked = (select(Member.unit_id, points.c.member_id, points.c.points, place, Member.first_name,
                     Member.last_name, Member.membership_number)
              .join(Member, Member.id == points.c.member_id)).subquery()
    rows = db.session.execute(select(ranked).where(ranked.c.place <= per_unit)
                              .order_by(ranked.c.unit_id, ranked.c.place)).all()
    names = dict(db.session.execute(select(Unit.id, Unit.name).where(
        in_values(Unit.id, list({r.unit_id for r in rows})))).all()) if rows else {}
    out: dict[int, list[Recruiter]] = {}
    for r in rows:
        out.setdefault(r.unit_id, []).append(Recruiter(r.member_id, f"{r.first_name} {r.last_name}",
                                                       r.membership_number, r.unit_id, names.get(r.unit_id, ""),
                                                       int(r.points), rank=int(r.place)))
    return out


# --- over time --------------------------------------------------------------------------


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def per_week(where: Area, *, weeks: int = WEEKS, today: date | None = None) -> list[tuple[date, int, int]]:
    """(Monday, referrals recorded, referrals credited) for each of the last ``weeks`` weeks, oldest first.

    Grouped by day in the database (portable, and at most 7 x weeks rows),
    folded into weeks here.
    """
    today = today or utcnow().date()
    first = week_start(today) - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time()).replace(tzinfo=utcnow().tzinfo)
    recorded: dict[date, int] = {}
    credited: dict[date, int] = {}
    for column, bucket in ((Referral.created_at, recorded), (Referral.credited_at, credited)):
        day = func.date(column)
        stmt = (select(day, func.count()).join(Member, Member.id == Referral.referrer_id)
                .where(column >= since, *_live_members(where)).group_by(day))
        for value, n in db.session.execute(stmt):
            when = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
            key = week_start(when)
            bucket[key] = bucket.get(key, 0) + int(n)
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
