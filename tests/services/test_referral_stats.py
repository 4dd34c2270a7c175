"""Referral figures (app/services/referrals/stats.py) against an independent count.

A seeded world is built through the services (``record_join``,
``record_prospect``, ``on_member_activated``, ``reverse_credit``,
``members.change_status`` for expulsions, ``delete_member``, ``expire_sweep``):
four constituencies with their wards, a few hundred members, referrals in every
status, credits of several sizes, reversals (by staff, on expulsion, on a
deleted referred member), deleted and lapsed recruiters, referrals on week
boundaries and after the report's "today". Every figure is then compared with
the same figure computed here in plain Python from the raw rows (every
``referrals``, ``referral_rewards``, ``members`` and ``units`` row, counted by
hand), never through stats.py's queries.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import Member, PointsEntry, Unit
from app.services import rbac
from app.services import referrals as ref
from app.services.errors import Forbidden, NotFound
from app.services.referrals import stats
from tests.conftest import wipe_tables
from tests.services.referral_world import (
    LEVELS, TODAY, Raw, World, as_tuples, build_world, funnel_dict, unit_tuples,
)


# Built once for the module and committed (every test here only reads it; what a test adds itself,
# a user or a unit, is rolled back with the test as usual), then wiped at the end as
# ``committing_app`` does: building it through the services takes seconds, too long per test.
@pytest.fixture(scope="module")
def world(app) -> World:
    with app.app_context(), pytest.MonkeyPatch.context() as monkeypatch:
        built = build_world(app, monkeypatch)
        db.session.commit()
        db.session.remove()
    yield built
    with app.app_context():
        wipe_tables()


# --- the world is what the tests need --------------------------------------------------------


def test_the_world_has_every_case_the_figures_must_handle(world):
    raw = Raw()
    assert len(raw.members) >= 300 and len(raw.referrals) >= 200
    assert set(Counter(r.status for r in raw.referrals)) == {"pending", "registered", "credited", "expired",
                                                            "rejected"}
    kinds = Counter(e.kind for e in raw.entries)
    assert kinds["award"] > 50 and kinds["reversal"] >= 10
    assert any(r.status == "rejected" and r.credited_at is not None for r in raw.referrals)  # reversed credits
    deleted_points = [raw.balance[mid] for mid in world.deleted_recruiters]
    assert all(p > 0 for p in deleted_points) and max(deleted_points) == max(raw.balance.values())
    points = [p for _mid, p in raw.balance.items() if p > 0]
    assert len(set(points)) >= 5 and len(points) > len(set(points))  # several sizes, and ties
    # The ledger is the balance: the service agrees with the hand count for everyone.
    for member_id in world.members[:80]:
        assert ref.balance(db.session.get(Member, member_id)) == raw.balance.get(member_id, 0) >= 0


# --- the funnel -------------------------------------------------------------------------------


def test_the_funnel_of_the_organisation_equals_the_hand_count(world):
    raw = Raw()
    got = stats.funnel(stats.area(None))
    expected = raw.funnel(None)
    assert funnel_dict(got) == expected
    assert expected["recorded"] > expected["registered"] > expected["credited"] > 0
    assert sum(got.by_status.values()) == got.recorded
    assert got.rate("credited") == round(expected["credited"] / expected["recorded"], 4)
    # Deleted recruiters' referrals are out: the count over every referral is larger.
    assert len(raw.referrals) > got.recorded
    assert funnel_dict(stats.funnel(stats.area(world.user("admin")))) == expected  # a global admin sees it all


def test_the_funnel_of_a_unit_and_of_a_coordinator(world):
    raw = Raw()
    for key in ("P1", "D1", "C1", "C4", "C1W2"):
        where = stats.area(world.user("admin"), world.units[key])
        assert set(where.unit_ids) == raw.subtree(world.units[key])
        assert funnel_dict(stats.funnel(where)) == raw.funnel(raw.subtree(world.units[key]))
    coord = stats.area(world.user("coordinator"))
    c1_wards = sorted(w for w in world.wards if raw.units[w].path.startswith(raw.units[world.units["C1"]].path))[:2]
    assert set(coord.unit_ids) == set(c1_wards)
    assert funnel_dict(stats.funnel(coord)) == raw.funnel(set(c1_wards))
    assert stats.Funnel().rate("credited") is None


# --- the member leaderboard -------------------------------------------------------------------


def test_the_leaderboard_equals_the_hand_count_with_competition_ranks(world):
    raw = Raw()
    expected = raw.recruiters(None)
    rows, total = stats.leaderboard(stats.area(None), limit=len(expected) + 10)
    assert total == len(expected) > 40
    assert as_tuples(rows) == expected
    ranks = [r.rank for r in rows]
    # Competition ranks: ties share a rank and the next rank skips ("1, 2, 2, 4").
    assert any(a == b for a, b in zip(ranks, ranks[1:]))
    for i, r in enumerate(rows):
        assert r.rank == (1 if i == 0 else (rows[i - 1].rank if rows[i - 1].points == r.points else i + 1))
    assert [r.points for r in rows] == sorted((r.points for r in rows), reverse=True)


def test_leaderboard_pages_are_slices_of_the_whole_with_the_whole_ranks(world):
    raw = Raw()
    expected = raw.recruiters(None)
    n = len(expected)
    for offset, limit in ((0, 20), (0, 5), (5, 7), (13, 13), (n - 3, 10), (n, 5), (n + 5, 5), (0, 0), (3, 0),
                          (1, 1), (10**20, 5)):
        rows, total = stats.leaderboard(stats.area(None), offset=offset, limit=limit)
        assert total == n
        assert as_tuples(rows) == expected[offset:offset + limit], (offset, limit)
    # An area (the other plan: its members first) pages the same way.
    where = stats.area(None, world.units["P1"])
    expected = raw.recruiters(raw.subtree(world.units["P1"]))
    for offset, limit in ((0, 10), (7, 9), (len(expected) - 2, 5), (0, 0), (10**20, 5)):
        rows, total = stats.leaderboard(where, offset=offset, limit=limit)
        assert (as_tuples(rows), total) == (expected[offset:offset + limit], len(expected)), (offset, limit)


def test_deleted_members_are_never_ranked(world):
    raw = Raw()
    deleted = set(world.deleted_recruiters)
    rows, _ = stats.leaderboard(stats.area(None), limit=10_000)
    assert not deleted & {r.member_id for r in rows}
    assert not deleted & {r.member_id for rs in stats.top_per_unit(stats.area(None)).values() for r in rs}
    # The best recruiter by ledger was deleted: the first one ranked is the best live one.
    assert rows[0].member_id == raw.recruiters(None)[0][0] and rows[0].rank == 1
    # Lapsed members keep their points and their place.
    lapsed = set(world.lapsed_recruiters)
    assert lapsed <= {r.member_id for r in rows}


def test_a_small_tie_gives_1_2_2_4(make_unit, make_member, app):
    """Four recruiters with 30, 20, 20 and 10 points (and one with none): ranks 1, 2, 2, 4."""
    ward = make_unit("Tie Ward", None, "TIE")
    people = [make_member(ward, phone=f"+26097{9000000 + i}") for i in range(5)]
    for person, points in zip(people, (20, 30, 10, 20, 0)):
        if points:
            db.session.add(PointsEntry(member_id=person.id, points=points + 5, kind="award", reason="x"))
            db.session.add(PointsEntry(member_id=person.id, points=-5, kind="reversal", reason="y"))
    db.session.flush()
    rows, total = stats.leaderboard(stats.area(None, ward.id))
    assert total == 4
    assert [(r.member_id, r.points, r.rank) for r in rows] == [
        (people[1].id, 30, 1), (people[0].id, 20, 2), (people[3].id, 20, 2), (people[2].id, 10, 4)]
    ranks = [(r.rank, r.of) for r in stats.ranks_of(people[3], 20)]
    assert ranks == [(2, 5)]  # a top-level unit: no parent, one rank
    assert [(r.rank, r.of) for r in stats.ranks_of(people[4], 0)] == [(None, 5)]


def test_a_coordinator_sees_only_their_wards_recruiters(world):
    raw = Raw()
    where = stats.area(world.user("coordinator"))
    wards = set(where.unit_ids)
    assert len(wards) == 2 and all(raw.units[w].level == 3 for w in wards)
    expected = raw.recruiters(wards)
    rows, total = stats.leaderboard(where, limit=1000)
    assert total == len(expected) > 0
    assert as_tuples(rows) == expected
    assert {r.unit_id for r in rows} <= wards
    # Ranks are within their wards: someone ranked 1 here may be far down the organisation's board.
    whole = {r[0]: r[-1] for r in raw.recruiters(None)}
    assert rows[0].rank == 1 and any(whole[r.member_id] != r.rank for r in rows)
    for unit_id in wards:  # one of the two wards, asked by id
        rows, total = stats.leaderboard(stats.area(world.user("coordinator"), unit_id), limit=1000)
        assert as_tuples(rows) == raw.recruiters({unit_id}) and total == len(rows)


# --- scope ------------------------------------------------------------------------------------


def test_area_outside_scope_is_not_found_and_in_sight_without_the_permission_forbidden(world, make_user):
    coordinator = world.user("coordinator")
    with pytest.raises(NotFound):
        stats.area(coordinator, world.units["C4W1"])  # another province's ward
    with pytest.raises(NotFound):
        stats.area(coordinator, world.units["C1W3"])  # the next ward of their own constituency
    with pytest.raises(NotFound):
        stats.area(coordinator, world.units["C1"])  # above their wards
    with pytest.raises(NotFound):
        stats.area(coordinator, 999_999)
    with pytest.raises(NotFound):
        stats.area(coordinator, "not-an-id")
    # In sight (a members.read role at C3) but without referrals.read there: Forbidden.
    with pytest.raises(Forbidden):
        stats.area(coordinator, world.clerk_unit)
    with pytest.raises(Forbidden):
        stats.area(coordinator, world.units["C3W1"])
    # Someone with no referrals.read anywhere is refused outright.
    clerk_only = make_user("clerk-only@test.org")
    rbac.assign_role(None, clerk_only, rbac.role_by_name("stats_clerk"), world.unit("C2"))
    with pytest.raises(Forbidden):
        stats.area(clerk_only)
    with pytest.raises(Forbidden):
        stats.area(clerk_only, world.units["C2"])
    member_login = make_user("plain-member@test.org", "member", member=db.session.get(Member, world.members[0]))
    with pytest.raises(Forbidden):
        stats.area(member_login)


def test_a_unit_admin_sees_their_subtree_only(world, make_user):
    raw = Raw()
    d1_admin = make_user("d1-admin@test.org", "admin", world.unit("D1"))
    where = stats.area(d1_admin)
    assert set(where.unit_ids) == raw.subtree(world.units["D1"])
    assert as_tuples(stats.leaderboard(where, limit=1000)[0]) == raw.recruiters(raw.subtree(world.units["D1"]))
    with pytest.raises(NotFound):
        stats.area(d1_admin, world.units["C3"])  # D2's
    with pytest.raises(NotFound):
        stats.area(d1_admin, world.units["P1"])  # above D1
    inner = stats.area(d1_admin, world.units["C2"])
    assert set(inner.unit_ids) == raw.subtree(world.units["C2"])


# --- the unit leaderboard ---------------------------------------------------------------------


def test_the_unit_leaderboard_at_every_level_equals_the_hand_count(world):
    raw = Raw()
    where = stats.area(None)
    assert stats.levels_below(where) == list(enumerate(LEVELS))
    for level, name in stats.levels_below(where):
        rows = stats.unit_leaderboard(where, level)
        assert unit_tuples(rows) == raw.unit_rows(None, level), name
        assert {r.level_name for r in rows} == {name} and all(r.level == level for r in rows)
        assert {r.name for r in rows} == {raw.units[r.unit_id].name for r in rows}
    # Rolled up, every level adds up to the same organisation totals.
    funnel = stats.funnel(where)
    board, total = stats.leaderboard(where, limit=10_000)
    for level, _ in stats.levels_below(where):
        rows = stats.unit_leaderboard(where, level)
        assert sum(r.recorded for r in rows) == funnel.recorded
        assert sum(r.credited for r in rows) == funnel.credited
        assert sum(r.recruiters for r in rows) == total
        assert sum(r.points for r in rows) == sum(r.points for r in board)


def test_the_unit_leaderboard_of_a_unit_scoped_area(world):
    raw = Raw()
    c1 = world.unit("C1")
    where = stats.area(world.user("admin"), c1.id)
    assert stats.levels_below(where) == [(3, "ward")]
    subtree = raw.subtree(c1.id)
    wards = stats.unit_leaderboard(where, 3)
    assert unit_tuples(wards) == raw.unit_rows(subtree, 3, c1.id)
    assert {r.unit_id for r in wards} == {w for w in world.wards if raw.units[w].path.startswith(c1.path)}
    assert unit_tuples(stats.unit_leaderboard(where, 2)) == raw.unit_rows(subtree, 2, c1.id)
    assert [r.unit_id for r in stats.unit_leaderboard(where, 2)] == [c1.id]
    assert stats.unit_leaderboard(where, 1) == [] == stats.unit_leaderboard(where, 0)  # nothing above the area
    p1 = world.unit("P1")
    where = stats.area(world.user("admin"), p1.id)
    for level in (1, 2, 3):
        assert unit_tuples(stats.unit_leaderboard(where, level)) == raw.unit_rows(raw.subtree(p1.id), level, p1.id)


def test_the_unit_leaderboard_of_a_coordinator_counts_only_their_wards(world):
    raw = Raw()
    where = stats.area(world.user("coordinator"))
    wards = set(where.unit_ids)
    for level in range(4):
        assert unit_tuples(stats.unit_leaderboard(where, level)) == raw.unit_rows(wards, level), level
    # Their constituency's row holds their two wards' figures only, not its other two wards'.
    (c1_row,) = stats.unit_leaderboard(where, 2)
    assert c1_row.unit_id == world.units["C1"]
    whole = {r.unit_id: r for r in stats.unit_leaderboard(stats.area(None), 2)}[c1_row.unit_id]
    mine = stats.unit_leaderboard(where, 3)
    assert c1_row.points == sum(r.points for r in mine) <= whole.points
    assert c1_row.recorded == sum(r.recorded for r in mine) < whole.recorded


# --- top recruiters per ward ------------------------------------------------------------------


def test_top_recruiters_per_ward_equal_the_hand_count(world):
    raw = Raw()
    for per_unit in (1, 3, 5):
        got = stats.top_per_unit(stats.area(None), per_unit=per_unit)
        expected = raw.top_per_ward(None, per_unit)
        assert {ward: [(r.member_id, r.points, r.rank) for r in rs] for ward, rs in got.items()} == expected
    got = stats.top_per_unit(stats.area(None))
    standing = {row[0]: row for row in raw.recruiters(None)}
    for ward, rs in got.items():
        for r in rs:
            assert (r.unit_id, r.unit_name) == (ward, raw.units[ward].name)
            assert (r.name, r.membership_number, r.credited, r.registered, r.recorded) == standing[r.member_id][1:3] + \
                standing[r.member_id][6:9]
    # A ward rank is the member's own rank in their ward, as ranks_of tells them.
    for ward, rs in got.items():
        for r in rs:
            member = db.session.get(Member, r.member_id)
            assert stats.ranks_of(member, r.points)[0].rank == r.rank
    coord = stats.area(world.user("coordinator"))
    got = stats.top_per_unit(coord)
    assert set(got) <= set(coord.unit_ids)
    assert {w: [(r.member_id, r.points, r.rank) for r in rs] for w, rs in got.items()} == raw.top_per_ward(
        set(coord.unit_ids), 3)


# --- referrals per week -----------------------------------------------------------------------


def _check_weeks(world, raw):
    for weeks in (1, 12, 20):
        got = stats.per_week(stats.area(None), weeks=weeks, today=TODAY)
        assert got == raw.per_week(None, weeks, TODAY), weeks
    for today in (TODAY - timedelta(days=2), TODAY - timedelta(days=30), stats.week_start(TODAY)):
        assert stats.per_week(stats.area(None), today=today) == raw.per_week(None, 12, today), today
    for key in ("C1", "C4W1"):
        unit = world.unit(key)
        got = stats.per_week(stats.area(None, unit.id), today=TODAY)
        assert got == raw.per_week(raw.subtree(unit.id), 12, TODAY)
    coord = stats.area(world.user("coordinator"))
    assert stats.per_week(coord, today=TODAY) == raw.per_week(set(coord.unit_ids), 12, TODAY)


def test_referrals_per_week_equal_the_hand_count(world):
    raw = Raw()
    got = stats.per_week(stats.area(None), today=TODAY)
    assert len(got) == 12 and got[-1][0] == stats.week_start(TODAY) and got[0][0].weekday() == 0
    assert sum(n for _, n, _ in got) > 100 and sum(c for _, _, c in got) > 50
    _check_weeks(world, raw)
    # The week boundary: recorded on Sunday 23:30 UTC, credited on Monday 00:10 UTC, in two weeks.
    sunday = stats.week_start(TODAY) - timedelta(days=8)
    edges = [r for r in raw.referrals if r.created_at == datetime.combine(sunday, datetime.min.time(), UTC)
             + timedelta(hours=23, minutes=30)]
    assert len(edges) == 1 and edges[0].credited_at.date() == sunday + timedelta(days=1)
    # After the report's today (Thursday of the same week): not counted in that week.
    later = [r for r in raw.referrals if r.created_at.date() > TODAY]
    assert later and all(r.created_at.date() - stats.week_start(TODAY) < timedelta(days=7) for r in later)


def test_referrals_per_week_do_not_depend_on_the_database_session_time_zone(world):
    """PostgreSQL's date() of a timestamptz is taken in the session's TimeZone: weeks must stay UTC weeks."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores UTC text: no session time zone")
    raw = Raw()
    for zone in ("Africa/Lusaka", "America/Lima", "Pacific/Kiritimati"):
        db.session.execute(text(f"SET LOCAL TIME ZONE '{zone}'"))
        _check_weeks(world, raw)


# --- a member's own ranks ---------------------------------------------------------------------


def test_ranks_of_a_member_in_their_ward_and_constituency(world):
    raw = Raw()
    standing = raw.recruiters(None)
    picks = [standing[0][0], standing[1][0], standing[len(standing) // 2][0], standing[-1][0]]
    ties = [a[0] for a, b in zip(standing, standing[1:]) if a[5] == b[5]][:3]
    zero = [mid for mid, m in raw.members.items() if m.deleted_at is None and raw.balance.get(mid, 0) == 0][:3]
    picks += ties + zero + world.lapsed_recruiters
    checked_none = 0
    for member_id in picks:
        member = db.session.get(Member, member_id)
        points = ref.balance(member)
        assert points == raw.balance.get(member_id, 0)
        got = stats.ranks_of(member, points)
        assert [r.unit.id for r in got] == [member.unit_id, member.unit.parent_id]
        for r in got:
            assert (r.rank, r.of) == raw.rank_in(member_id, r.unit.id, points), (member_id, r.unit.name)
        checked_none += got[0].rank is None
    assert checked_none == len(zero)
    # The ward rank of the ward's best live recruiter is 1; "of" counts live active members only.
    ward = db.session.get(Unit, world.wards[0])
    active_live = sum(1 for m in raw.members.values()
                      if m.unit_id == ward.id and m.deleted_at is None and m.status == "active")
    somebody = db.session.scalar(select(Member).where(Member.unit_id == ward.id, Member.deleted_at.is_(None)))
    assert stats.ranks_of(somebody, 0)[0].of == active_live
    assert active_live < sum(1 for m in raw.members.values() if m.unit_id == ward.id)
