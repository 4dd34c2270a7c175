"""The world the referral-figure tests count in, and the count by hand (tests/services/test_referral_stats.py).

``build_world`` makes a seeded organisation through the services; ``Raw``
reads every row back and computes each figure in plain Python, never
through stats.py's queries.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Member, PointsEntry, Referral, Unit, User
from app.services import geo, rbac
from app.services import members as members_service
from app.services import referrals as ref
from app.services.auth import hash_password
from app.services.errors import ServiceError
from app.services.referrals import stats
from tests.conftest import PASSWORD

TODAY = date(2027, 3, 10)  # a Wednesday: the report's "today"
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
SEED = 13
POINTS_CHOICES = (10, 10, 10, 5, 20)  # REFERRAL_POINTS changes over time: balances of several sizes, and ties
LEVELS = ("province", "district", "constituency", "ward")


# --- the world ------------------------------------------------------------------------------
#
# Everything is kept by id and loaded again in each test's own session.


@dataclass
class World:
    units: dict[str, int]
    wards: list[int]
    members: list[int]
    deleted_recruiters: list[int]
    lapsed_recruiters: list[int]
    admin: int  # user ids
    coordinator: int  # ward_coordinator of C1's first two wards (C1 has four)
    clerk_unit: int  # where the coordinator also holds a role without referrals.read

    def unit(self, key: str) -> Unit:
        return db.session.get(Unit, self.units[key])

    def user(self, which: str) -> User:
        return db.session.get(User, getattr(self, which))


class _Factory:
    """Units, members and users through the services, as the conftest factories make them."""

    def __init__(self) -> None:
        self.phones = 0
        self.members = 0

    def phone(self) -> str:
        self.phones += 1
        return f"+26097{self.phones:07d}"

    def unit(self, name: str, parent: Unit | None, code: str) -> Unit:
        return geo.create_unit(None, name, code, parent)

    def member(self, unit: Unit, **fields) -> Member:
        self.members += 1
        data = {"first_name": f"First{self.members}", "last_name": f"Last{self.members}", "unit_id": unit.id,
                "status": "active", "phone": self.phone()}
        data.update(fields)
        return members_service.create_member(None, data)

    def user(self, email: str, role: str | None = None, unit: Unit | None = None) -> User:
        user = User(email=email, password_hash=hash_password(PASSWORD))
        db.session.add(user)
        db.session.flush()
        if role:
            rbac.assign_role(None, user, rbac.role_by_name(role), unit)
        return user


def _tree(make: _Factory) -> tuple[dict[str, Unit], list[Unit]]:
    """P1 > D1 > C1 (4 wards), C2 (3) ; P1 > D2 > C3 (3) ; P2 > D3 > C4 (4): 4 constituencies, 14 wards."""
    units: dict[str, Unit] = {}
    shape = {"P1": {"D1": {"C1": 4, "C2": 3}, "D2": {"C3": 3}}, "P2": {"D3": {"C4": 4}}}
    wards = []
    for p, districts in shape.items():
        units[p] = make.unit(f"Province {p}", None, p)
        for d, cons in districts.items():
            units[d] = make.unit(f"District {d}", units[p], d)
            for c, n in cons.items():
                units[c] = make.unit(f"Constituency {c}", units[d], c)
                for w in range(1, n + 1):
                    key = f"{c}W{w}"
                    units[key] = make.unit(f"Ward {key}", units[c], key)
                    wards.append(units[key])
    db.session.flush()
    return units, wards


def _at(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(0, max(1, int((end - start).total_seconds()))))


def _credit(app, rng, member: Member, when: datetime) -> Referral | None:
    """The referred member is approved (active) and credited at ``when``, with this period's points."""
    app.config["REFERRAL_POINTS"] = rng.choice(POINTS_CHOICES)
    member.status = "active"
    db.session.flush()
    return ref.on_member_activated(member, now=min(when, NOW))


def build_world(app, monkeypatch) -> World:
    monkeypatch.setitem(app.config, "REFERRAL_POINTS", 10)
    monkeypatch.setitem(app.config, "REFERRAL_PROSPECTS_PER_DAY", 1000)
    rng = random.Random(SEED)
    make = _Factory()
    units, wards = _tree(make)
    admin = make.user("stats-admin@test.org", "admin")

    base: list[Member] = []
    for ward in wards:
        for _ in range(rng.randint(8, 13)):
            base.append(make.member(ward, status="active" if rng.random() < 0.85 else "pending"))
    recruiters = [m for m in base if m.status == "active"]
    rng.shuffle(recruiters)
    # A few recruit a lot, most a little, many not at all (a long tail, as in life).
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(recruiters))]
    everyone = list(base)

    def newcomer(phone: str | None = None) -> Member:
        m = make.member(rng.choice(wards), status="pending", phone=phone or make.phone())
        everyone.append(m)
        return m

    for _ in range(230):
        referrer = rng.choices(recruiters, weights)[0]
        created = _at(rng, NOW - timedelta(days=125), NOW - timedelta(hours=1))
        source = rng.choices(("code", "link", "prospect"), (45, 20, 35))[0]
        if source != "prospect":
            joined = newcomer()
            referral = ref.record_join(joined, ref.code_for(referrer), source=source, now=created)
            fate = rng.choices(("registered", "credited", "rejected", "revoked", "expelled", "deleted"),
                               (20, 50, 8, 6, 5, 5))[0]
            if fate == "rejected":
                ref.on_member_rejected(joined, "Not resident in the ward.", now=created + timedelta(days=2))
                continue
            if fate == "registered":
                continue
            _credit(app, rng, joined, created + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23)))
            if fate == "revoked":
                ref.reverse_credit(admin, referral, "Paid to join.", now=NOW - timedelta(days=1))
            elif fate == "expelled":
                members_service.change_status(None, joined, "expelled", "Conduct.")
            elif fate == "deleted":
                members_service.delete_member(None, joined)  # a duplicate: the credit is reversed
            continue
        try:
            prospect = ref.record_prospect(referrer, f"Prospect {make.phones}", make.phone(), None, now=created)
        except ServiceError:
            continue
        fate = rng.choices(("waits", "joins", "joins_credited", "lost_code"), (45, 15, 30, 10))[0]
        if fate == "waits":
            continue  # pending, or expired by the sweep below when older than 60 days
        joined = newcomer(prospect.prospect_phone)
        join_at = min(created + timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23)), NOW)
        other = rng.choice([r for r in recruiters if r.id != referrer.id])
        # Joining with another member's code: the earlier prospect wins, the code's referral is rejected.
        won = ref.record_join(joined, ref.code_for(other) if fate == "lost_code" else None, now=join_at)
        assert won is prospect and prospect.status == "registered"
        if fate == "joins_credited" or (fate == "lost_code" and rng.random() < 0.5):
            _credit(app, rng, joined, join_at + timedelta(days=rng.randint(0, 14)))

    # Week boundaries (UTC): Sunday 23:30 recorded, credited Monday 00:10; and after the report's today.
    edge_referrer = recruiters[1]
    sunday = datetime.combine(stats.week_start(TODAY) - timedelta(days=8), datetime.min.time(), UTC)
    for created, credited in ((sunday + timedelta(hours=23, minutes=30), sunday + timedelta(days=1, minutes=10)),
                              (NOW + timedelta(days=1), NOW + timedelta(days=2)),  # Thursday, after "today"
                              (NOW - timedelta(days=21), NOW + timedelta(days=3))):
        joined = newcomer()
        ref.record_join(joined, ref.code_for(edge_referrer), now=created)
        app.config["REFERRAL_POINTS"] = 10
        joined.status = "active"
        db.session.flush()
        ref.on_member_activated(joined, now=credited)

    assert ref.expire_sweep(NOW)["referrals_expired"] > 0

    balances = _balances()
    earners = sorted((m for m in recruiters if balances.get(m.id, 0) > 0), key=lambda m: (-balances[m.id], m.id))
    # Deleted recruiters, among them the best one: never ranked, their referrals out of every figure.
    deleted = [earners[0], earners[5], earners[11]]
    for m in deleted:
        members_service.delete_member(None, m)
    lapsed = [earners[3], earners[8]]  # live, not active: still ranked, not counted in "of"
    for m in lapsed:
        members_service.change_status(None, m, "lapsed", "Did not renew.")

    c1_wards = [w for w in wards if w.parent_id == units["C1"].id]
    coordinator = make.user("stats-coord@test.org", "ward_coordinator", c1_wards[0])
    rbac.assign_role(None, coordinator, rbac.role_by_name("ward_coordinator"), c1_wards[1])
    clerk = rbac.create_role(None, "stats_clerk", "Members only", ["members.read"])
    rbac.assign_role(None, coordinator, clerk, units["C3"])
    db.session.flush()
    return World({k: u.id for k, u in units.items()}, [w.id for w in wards], [m.id for m in everyone],
                 [m.id for m in deleted], [m.id for m in lapsed], admin.id, coordinator.id, units["C3"].id)


# --- the independent count -------------------------------------------------------------------


def _balances() -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for member_id, points in db.session.execute(select(PointsEntry.member_id, PointsEntry.points)):
        out[member_id] += points
    return dict(out)


class Raw:
    """Every row the figures come from, read once, and the figures computed from them by hand."""

    def __init__(self) -> None:
        db.session.flush()
        self.units = {u.id: u for u in db.session.execute(select(Unit.id, Unit.name, Unit.level, Unit.path))}
        self.members = {m.id: m for m in db.session.execute(
            select(Member.id, Member.unit_id, Member.status, Member.deleted_at, Member.first_name,
                   Member.last_name, Member.membership_number))}
        self.referrals = list(db.session.execute(
            select(Referral.id, Referral.referrer_id, Referral.status, Referral.created_at, Referral.registered_at,
                   Referral.credited_at)))
        self.entries = list(db.session.execute(select(PointsEntry.member_id, PointsEntry.points, PointsEntry.kind)))
        self.balance: dict[int, int] = defaultdict(int)
        for e in self.entries:
            self.balance[e.member_id] += e.points

    # areas are plain sets of unit ids here (None: everywhere)

    def subtree(self, unit_id: int) -> set[int]:
        top = self.units[unit_id].path
        return {u.id for u in self.units.values() if u.path.startswith(top)}

    def ancestors(self, unit_id: int) -> list[int]:
        """The unit and every unit above it, from the path."""
        return [int(p) for p in self.units[unit_id].path.strip("/").split("/")]

    def live(self, area: set[int] | None) -> dict[int, object]:
        return {mid: m for mid, m in self.members.items()
                if m.deleted_at is None and (area is None or m.unit_id in area)}

    def referrals_of(self, area: set[int] | None) -> list:
        live = self.live(area)
        return [r for r in self.referrals if r.referrer_id in live]

    def funnel(self, area):
        rs = self.referrals_of(area)
        return {"recorded": len(rs), "registered": sum(r.registered_at is not None for r in rs),
                "credited": sum(r.credited_at is not None for r in rs),
                "by_status": dict(Counter(r.status for r in rs))}

    def recruiters(self, area) -> list[tuple]:
        """(member_id, name, number, unit_id, unit name, points, credited, registered, recorded, rank), in order."""
        live = self.live(area)
        rows = [(mid, self.balance[mid]) for mid in live if self.balance.get(mid, 0) > 0]
        rows.sort(key=lambda r: (-r[1], r[0]))
        standing = defaultdict(lambda: [0, 0, 0])
        for r in self.referrals:
            if r.status == "rejected":
                continue  # a recruiter's own counts are what still stands
            c = standing[r.referrer_id]
            c[0] += r.status == "credited"
            c[1] += r.registered_at is not None
            c[2] += 1
        out = []
        for mid, points in rows:
            m = self.members[mid]
            rank = 1 + sum(1 for _, p in rows if p > points)
            out.append((mid, f"{m.first_name} {m.last_name}", m.membership_number, m.unit_id,
                        self.units[m.unit_id].name, points, *standing[mid], rank))
        return out

    def unit_rows(self, area, level: int, area_unit: int | None = None) -> list[tuple]:
        """(unit_id, points, recorded, registered, credited, recruiters, rank) for units of ``level``, ranked."""
        live = self.live(area)
        figures = {u.id: [0, 0, 0, 0, 0] for u in self.units.values() if u.level == level}
        if area is not None:
            shown = {uid for uid in figures
                     if any(uid in self.ancestors(a) for a in area)
                     and (area_unit is None or self.units[uid].path.startswith(self.units[area_unit].path))}
            figures = {uid: f for uid, f in figures.items() if uid in shown}

        def rows_for(member_unit: int):
            return [figures[a] for a in self.ancestors(member_unit) if a in figures]

        for mid, m in live.items():
            for f in rows_for(m.unit_id):
                f[0] += self.balance.get(mid, 0)
                f[4] += self.balance.get(mid, 0) > 0
        for r in self.referrals:
            if r.referrer_id in live:
                for f in rows_for(live[r.referrer_id].unit_id):
                    f[1] += 1
                    f[2] += r.registered_at is not None
                    f[3] += r.credited_at is not None
        ordered = sorted(figures.items(), key=lambda kv: (-kv[1][0], -kv[1][3], self.units[kv[0]].name))
        return [(uid, *f, 1 + sum(1 for g in figures.values() if g[0] > f[0])) for uid, f in ordered]

    def top_per_ward(self, area, per_unit: int) -> dict[int, list[tuple]]:
        """Per ward: (member_id, points, rank in the ward) of its best recruiters."""
        by_ward = defaultdict(list)
        for mid, m in self.live(area).items():
            if self.balance.get(mid, 0) > 0:
                by_ward[m.unit_id].append((mid, self.balance[mid]))
        out = {}
        for ward, rows in by_ward.items():
            rows.sort(key=lambda r: (-r[1], r[0]))
            out[ward] = [(mid, p, 1 + sum(1 for _, q in rows if q > p)) for mid, p in rows[:per_unit]]
        return out

    def per_week(self, area, weeks: int, today: date) -> list[tuple[date, int, int]]:
        monday = today - timedelta(days=today.weekday())
        first = monday - timedelta(weeks=weeks - 1)
        rows = []
        rs = self.referrals_of(area)
        for k in range(weeks):
            start = first + timedelta(weeks=k)

            def inside(when: datetime | None) -> bool:
                if when is None:
                    return False
                day = when.astimezone(UTC).date()
                return start <= day < start + timedelta(days=7) and day <= today

            rows.append((start, sum(inside(r.created_at) for r in rs), sum(inside(r.credited_at) for r in rs)))
        return rows

    def rank_in(self, member_id: int, unit_id: int, points: int) -> tuple[int | None, int]:
        here = self.live(self.subtree(unit_id))
        of = sum(1 for m in here.values() if m.status == "active")
        if points <= 0:
            return None, of
        return 1 + sum(1 for mid in here if self.balance.get(mid, 0) > points), of


def as_tuples(recruiters) -> list[tuple]:
    return [(r.member_id, r.name, r.membership_number, r.unit_id, r.unit_name, r.points, r.credited, r.registered,
             r.recorded, r.rank) for r in recruiters]


def unit_tuples(rows) -> list[tuple]:
    return [(r.unit_id, r.points, r.recorded, r.registered, r.credited, r.recruiters, r.rank) for r in rows]


def funnel_dict(f: stats.Funnel) -> dict:
    return {"recorded": f.recorded, "registered": f.registered, "credited": f.credited, "by_status": f.by_status}


