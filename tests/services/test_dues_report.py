"""The dues report (app/services/dues/report.py): completed payments per unit and month, with totals.

The report's figures are checked against sums computed here, in plain
Python, from the payments the test made: each completed payment's month in
the organisation's time zone, its unit walked up by parent to the row's unit
(not by path, as the service does), then counted and summed per currency.
Refunded, pending, failed and cancelled payments, and those outside the
months, must not count. Then scope (a ward coordinator sees their ward, one
of two wards sees both rows and nothing else), the unit's access answers,
every bad month's message at once, the defaults, the chart's figures and
the number of statements (the same, however much data).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from app.extensions import db
from app.models import Unit
from app.services import dues, rbac
from app.services.dues import report, tiers
from app.services.errors import Forbidden, NotFound, ValidationErrors

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=timezone.utc)
TODAY = NOW.date()


def at(year: int, month: int, day: int = 10, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


@pytest.fixture()
def money(staff):
    return {
        "ZMW": tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120", "currency": "ZMW",
                                                  "duration_months": "12", "card_type": "standard"}),
        "USD": tiers.create_tier(staff["admin"], {"name": "Diaspora", "price": "25", "currency": "USD",
                                                  "duration_months": "12", "card_type": "standard"}),
    }


def pay(members, unit: Unit, tier, when: datetime | None, *, status: str = "completed", amount: int | None = None):
    """A payment in ``unit`` of ``tier``, completed at ``when`` (a member per unit, reused)."""
    member = members(unit)
    if status in ("pending", "failed", "cancelled"):
        payment = dues.new_payment(member, tier, "cash")
        payment.status = status
        payment.completed_at = when if status != "pending" else None  # a failed one may carry a time: no matter
    else:
        data = {"tier_id": tier.id, "method": "cash"}
        if amount is not None:
            data["amount_minor"] = amount
        payment = dues.record_manual(None, member, data, today=TODAY)
        if status == "refunded":
            dues.refund(None, payment, "Entered in error", today=TODAY)
        payment.completed_at = when
    db.session.flush()
    return payment


@pytest.fixture()
def members(tree, make_member):
    made: dict[int, object] = {}

    def member_of(unit: Unit):
        if unit.id not in made:
            made[unit.id] = make_member(unit)
        return made[unit.id]

    return member_of


@pytest.fixture()
def ledger(tree, money, members):
    """Payments at wards, at a district and a province themselves, over several months, in two currencies."""
    zmw, usd = money["ZMW"], money["USD"]
    specs = [
        ("w1", zmw, at(2027, 1, 5), "completed", None),
        ("w1", zmw, at(2027, 1, 20), "completed", 6000),
        ("w1", usd, at(2027, 3, 1), "completed", None),
        ("w2", zmw, at(2027, 3, 31, 23, 59), "completed", None),
        ("w2", usd, at(2027, 5, 2), "completed", 1000),
        ("w3", zmw, at(2027, 2, 14), "completed", None),
        ("w3", zmw, at(2027, 6, 1, 0, 0), "completed", None),
        ("w4", zmw, at(2027, 1, 1, 0, 0), "completed", None),
        ("w4", usd, at(2027, 4, 30), "completed", 2500),
        ("d1", zmw, at(2027, 2, 2), "completed", 9999),  # paid at the district itself
        ("p1", usd, at(2027, 4, 4), "completed", None),  # paid at the province itself
        # Never counted:
        ("w1", zmw, at(2027, 2, 10), "refunded", None),
        ("w4", usd, at(2027, 3, 10), "refunded", None),
        ("w2", zmw, None, "pending", None),
        ("w3", zmw, at(2027, 2, 10), "failed", None),
        ("w3", usd, at(2027, 2, 11), "cancelled", None),
        ("w1", zmw, at(2026, 12, 31, 23, 59), "completed", None),  # before the months asked for
        ("w4", zmw, at(2027, 7, 1), "completed", None),  # after them
    ]
    return [pay(members, tree[key], tier, when, status=status, amount=amount)
            for key, tier, when, status, amount in specs]


def expected(payments, chosen: Unit | None, first: date, last: date, zone: str = "UTC", tops=None):
    """The report's cells computed independently: {(row unit id, "YYYY-MM"): (count, {currency: minor})}."""
    cells: dict[tuple[int, str], list] = defaultdict(lambda: [0, defaultdict(int)])
    for p in payments:
        if p.status != "completed" or p.completed_at is None:
            continue
        local = p.completed_at.astimezone(ZoneInfo(zone))
        month = date(local.year, local.month, 1)
        if not first <= month <= last:
            continue
        unit = db.session.get(Unit, p.unit_id)
        if chosen is not None:  # walk up by parent to the chosen unit's child (or the chosen unit itself)
            if unit.id != chosen.id:
                while unit.parent_id != chosen.id:
                    unit = unit.parent
                    if unit is None:
                        break
            if unit is None:
                continue
        else:
            while unit.id not in tops:
                unit = unit.parent
                if unit is None:
                    break
            if unit is None:
                continue
        cell = cells[(unit.id, month.strftime("%Y-%m"))]
        cell[0] += 1
        cell[1][p.currency] += p.amount_minor
    return {key: (n, dict(amounts)) for key, (n, amounts) in cells.items()}


def figures(result: report.Report):
    """The report's non-empty cells in the same shape as ``expected``."""
    out = {}
    for row in result.rows:
        for month, cell in zip(result.months, row.cells):
            if cell.count:
                out[(row.unit_id, month.strftime("%Y-%m"))] = (cell.count, dict(cell.amounts))
    return out


def check_totals(result: report.Report) -> None:
    """Row totals, column totals and the grand total are the sums of the cells."""
    for row in result.rows:
        assert row.total.count == sum(c.count for c in row.cells)
        for currency in result.currencies:
            assert row.total.amounts.get(currency, 0) == sum(c.amounts.get(currency, 0) for c in row.cells)
    for k, column in enumerate(result.columns):
        assert column.count == sum(r.cells[k].count for r in result.rows)
        for currency in result.currencies:
            assert column.amounts.get(currency, 0) == sum(r.cells[k].amounts.get(currency, 0) for r in result.rows)
    assert result.total.count == sum(r.total.count for r in result.rows) == sum(c.count for c in result.columns)
    for currency in result.currencies:
        assert result.total.amounts[currency] == sum(r.total.amounts.get(currency, 0) for r in result.rows)


def run(actor, args, now=NOW):
    return report.report(actor, report.parse_filters(actor, args, now=now))


# --- the figures -------------------------------------------------------------------------


def test_the_whole_organisation_per_province_equals_an_independent_sum(staff, tree, ledger):
    result = run(staff["admin"], {"from": "2027-01", "to": "2027-06"})
    assert result.unit is None
    assert [r.unit_id for r in result.rows] == [tree["p2"].id, tree["p1"].id]  # Highlands, Northern: by name
    assert [m.strftime("%Y-%m") for m in result.months] == [f"2027-0{k}" for k in range(1, 7)]
    want = expected(ledger, None, date(2027, 1, 1), date(2027, 6, 1), tops={tree["p1"].id, tree["p2"].id})
    assert figures(result) == want
    check_totals(result)
    assert result.currencies == ["USD", "ZMW"]
    completed = [p for p in ledger if p.status == "completed" and date(2027, 1, 1) <= p.completed_at.date()
                 < date(2027, 7, 1)]
    assert result.total.count == len(completed) == 11
    assert result.total.amounts == {"USD": 2500 + 1000 + 2500 + 2500, "ZMW": 12000 * 5 + 6000 + 9999}


def test_a_unit_has_a_row_per_child_and_one_for_payments_made_at_it(staff, tree, ledger):
    p1 = run(staff["admin"], {"unit_id": str(tree["p1"].id), "from": "2027-01", "to": "2027-06"})
    assert [(r.unit_id, r.own, r.label) for r in p1.rows] == [
        (tree["d1"].id, False, "Kasama"), (tree["d2"].id, False, "Mbala"), (tree["p1"].id, True, "Northern itself")]
    assert figures(p1) == expected(ledger, tree["p1"], date(2027, 1, 1), date(2027, 6, 1))
    check_totals(p1)
    # Two levels down: the constituency's wards; the district's own payment is not in it.
    c1 = run(staff["admin"], {"unit_id": tree["c1"].id, "from": "2027-01", "to": "2027-06"})
    assert [r.unit_id for r in c1.rows] == [tree["w1"].id, tree["w2"].id]
    assert figures(c1) == expected(ledger, tree["c1"], date(2027, 1, 1), date(2027, 6, 1))
    check_totals(c1)
    # D1: its constituency, plus its own payment of 99.99.
    d1 = run(staff["admin"], {"unit_id": tree["d1"].id, "from": "2027-01", "to": "2027-06"})
    assert [(r.unit_id, r.own) for r in d1.rows] == [(tree["c1"].id, False), (tree["d1"].id, True)]
    assert d1.rows[-1].total.amounts == {"ZMW": 9999}
    # A ward: its own row only, named plainly.
    w3 = run(staff["admin"], {"unit_id": tree["w3"].id, "from": "2027-01", "to": "2027-06"})
    assert [(r.unit_id, r.own, r.label) for r in w3.rows] == [(tree["w3"].id, True, "Lunte Ward 1")]
    assert figures(w3) == expected(ledger, tree["w3"], date(2027, 1, 1), date(2027, 6, 1))


def test_refunded_pending_failed_cancelled_and_other_months_never_count(staff, tree, ledger):
    result = run(staff["admin"], {"unit_id": tree["w3"].id, "from": "2027-02", "to": "2027-02"})
    assert result.total.count == 1 and result.total.amounts == {"ZMW": 12000}  # not the failed nor the cancelled
    w1 = run(staff["admin"], {"unit_id": tree["w1"].id, "from": "2026-12", "to": "2027-02"})
    assert [c.count for c in w1.columns] == [1, 2, 0]  # the refund of 10 February is gone from February
    assert w1.total.amounts == {"ZMW": 12000 + 12000 + 6000}
    w4 = run(staff["admin"], {"unit_id": tree["w4"].id, "from": "2027-03", "to": "2027-07"})
    assert [c.count for c in w4.columns] == [0, 1, 0, 0, 1]
    assert w4.total.amounts == {"USD": 2500, "ZMW": 12000}


def test_months_are_the_organisations(app, staff, tree, money, members, monkeypatch):
    """In Lusaka (UTC+2) 31 March 22:30 UTC is already April; 31 May 21:59 UTC is still May."""
    made = [pay(members, tree["w1"], money["ZMW"], at(2027, 3, 31, 22, 30)),
            pay(members, tree["w1"], money["ZMW"], at(2027, 5, 31, 21, 59)),
            pay(members, tree["w1"], money["USD"], at(2027, 5, 31, 22, 0))]
    args = {"unit_id": tree["c1"].id, "from": "2027-03", "to": "2027-06"}
    utc = run(staff["admin"], args)
    assert [c.count for c in utc.columns] == [1, 0, 2, 0]
    monkeypatch.setitem(app.config, "TIMEZONE", "Africa/Lusaka")
    lusaka = run(staff["admin"], args)
    assert lusaka.timezone == "Africa/Lusaka"
    assert [c.count for c in lusaka.columns] == [0, 1, 1, 1]
    assert figures(lusaka) == expected(made, tree["c1"], date(2027, 3, 1), date(2027, 6, 1), "Africa/Lusaka")
    # A zone with daylight saving time: the boundary moves with it (New York, UTC-5 in winter, UTC-4 in summer).
    monkeypatch.setitem(app.config, "TIMEZONE", "America/New_York")
    new_york = run(staff["admin"], args)
    assert figures(new_york) == expected(made, tree["c1"], date(2027, 3, 1), date(2027, 6, 1), "America/New_York")


# --- scope -------------------------------------------------------------------------------


def test_a_ward_coordinator_sees_only_their_ward(staff, tree, ledger):
    result = run(staff["coordinator"], {"from": "2027-01", "to": "2027-06"})
    assert result.unit is not None and result.unit.id == tree["w1"].id  # the top of their area
    assert [r.unit_id for r in result.rows] == [tree["w1"].id]
    assert figures(result) == expected(ledger, tree["w1"], date(2027, 1, 1), date(2027, 6, 1))
    assert result.total.count == 3 and result.total.amounts == {"ZMW": 12000 + 6000, "USD": 2500}


def test_a_coordinator_of_two_wards_gets_a_row_for_each_and_nothing_else(staff, tree, ledger, make_user):
    user = make_user("two@test.org", "ward_coordinator", tree["w1"])
    rbac.assign_role(None, user, rbac.role_by_name("ward_coordinator"), tree["w4"])
    result = run(user, {"from": "2027-01", "to": "2027-06"})
    assert result.unit is None and [r.unit_id for r in result.rows] == [tree["w4"].id, tree["w1"].id]
    assert figures(result) == expected(ledger, None, date(2027, 1, 1), date(2027, 6, 1),
                                       tops={tree["w1"].id, tree["w4"].id})
    check_totals(result)


def test_a_unit_outside_the_area_is_not_found_and_one_seen_without_the_right_is_forbidden(staff, tree, make_user):
    for raw in (tree["w4"].id, tree["c1"].id, "999999", "abc", "1e3", "٣", "-1", "9" * 40):
        with pytest.raises(NotFound):
            report.parse_filters(staff["coordinator"], {"unit_id": raw}, now=NOW)
    role = rbac.create_role(None, "registrar", "Reads members only", ["members.read", "payments.read"])
    reader = make_user("reader@test.org")
    rbac.assign_role(None, reader, role, tree["w1"])
    rbac.assign_role(None, reader, rbac.role_by_name("ward_coordinator"), tree["w2"])
    members_only = rbac.create_role(None, "clerk", "Members, no payments", ["members.read"])
    rbac.assign_role(None, reader, members_only, tree["w3"])
    with pytest.raises(Forbidden):  # they see W3 (members.read) but may not read payments there
        report.parse_filters(reader, {"unit_id": tree["w3"].id}, now=NOW)
    nobody = make_user("nobody@test.org")
    rbac.assign_role(None, nobody, members_only, tree["w1"])
    with pytest.raises(Forbidden):
        report.parse_filters(nobody, {}, now=NOW)


# --- the filters -------------------------------------------------------------------------


def test_bad_months_give_every_message_at_once(staff):
    cases = [
        ({"from": "2027-13", "to": "yesterday"}, {"from": report.MONTH_BAD, "to": report.MONTH_BAD}),
        ({"from": "1999-01", "to": "2201-01"}, {"from": "Give a month between 2000-01 and 2200-12.",
                                                "to": "Give a month between 2000-01 and 2200-12."}),
        ({"from": "2027-05", "to": "2027-01"}, {"to": "The last month is before the first."}),
        ({"from": "2020-01", "to": "2027-01"}, {"to": "Choose at most 36 months at a time."}),
        ({"from": "٢٠٢٧-٠١", "to": "2027-00"}, {"from": report.MONTH_BAD, "to": report.MONTH_BAD}),
        ({"from": "2027-1-1", "to": "27-01"}, {"from": report.MONTH_BAD, "to": report.MONTH_BAD}),
        ({"from": "9" * 400}, {"from": report.MONTH_BAD}),
    ]
    for args, messages in cases:
        with pytest.raises(ValidationErrors) as caught:
            report.parse_filters(staff["admin"], args, now=NOW)
        assert caught.value.errors == messages, args


def test_defaults_are_the_last_twelve_months_where_the_organisation_is(app, staff, monkeypatch):
    filters = report.parse_filters(staff["admin"], {}, now=NOW)
    assert (filters.first, filters.last, len(filters.months)) == (date(2026, 7, 1), date(2027, 6, 1), 12)
    assert filters.unit is None and filters.tops  # the whole organisation for a global reader
    only_from = report.parse_filters(staff["admin"], {"from": "2027-03"}, now=NOW)
    assert (only_from.first, only_from.last) == (date(2027, 3, 1), date(2027, 6, 1))  # not past this month
    old = report.parse_filters(staff["admin"], {"from": "2025-03"}, now=NOW)
    assert (old.first, old.last) == (date(2025, 3, 1), date(2026, 2, 1))
    only_to = report.parse_filters(staff["admin"], {"to": " 2027-02 "}, now=NOW)
    assert (only_to.first, only_to.last) == (date(2026, 3, 1), date(2027, 2, 1))
    one = report.parse_filters(staff["admin"], {"from": "2027-02", "to": "2027-2"}, now=NOW)
    assert one.months == [date(2027, 2, 1)]
    monkeypatch.setitem(app.config, "TIMEZONE", "Pacific/Auckland")  # already 1 July there at 12:00 UTC, 30 June
    late = report.parse_filters(staff["admin"], {}, now=datetime(2027, 6, 30, 12, 0, tzinfo=timezone.utc))
    assert late.last == date(2027, 7, 1)


def test_the_longest_range_is_one_statement_too(staff, tree, ledger):
    result = run(staff["admin"], {"unit_id": tree["p1"].id, "from": "2024-07", "to": "2027-06"})
    assert len(result.months) == report.MAX_MONTHS
    assert figures(result) == expected(ledger, tree["p1"], date(2024, 7, 1), date(2027, 6, 1))
    check_totals(result)


def test_a_single_month_and_an_empty_report(staff, tree, ledger):
    result = run(staff["admin"], {"unit_id": tree["c1"].id, "from": "2027-01", "to": "2027-01"})
    assert [c.count for c in result.columns] == [2] and not result.empty
    empty = run(staff["admin"], {"from": "2030-01", "to": "2030-12"})
    assert empty.empty and empty.currencies == [] and len(empty.rows) == 2
    assert report.chart(empty)["currencies"] == []


# --- the chart and the statements -------------------------------------------------------------


def test_the_chart_adds_up_to_the_table(staff, tree, ledger):
    result = run(staff["admin"], {"unit_id": tree["p1"].id, "from": "2027-01", "to": "2027-06"})
    data = report.chart(result)
    assert data["months"] == [m.strftime("%Y-%m") for m in result.months]
    assert [c["currency"] for c in data["currencies"]] == result.currencies
    for chart in data["currencies"]:
        currency = chart["currency"]
        assert chart["totals"] == [c.amounts.get(currency, 0) for c in result.columns]
        assert [sum(s["data"][k] for s in chart["series"]) for k in range(6)] == chart["totals"]
        rows = {r.unit_id: r for r in result.rows}
        for series in chart["series"]:
            assert series["data"] == [c.amounts.get(currency, 0) for c in rows[series["unit_id"]].cells]
        # Only rows with money in this currency are drawn.
        assert {s["unit_id"] for s in chart["series"]} == {r.unit_id for r in result.rows
                                                           if r.total.amounts.get(currency)}


def test_past_the_series_limit_the_smallest_units_are_summed_as_other_units():
    months = [date(2027, 1, 1), date(2027, 2, 1)]
    rows = []
    for k in range(report.CHART_SERIES + 3):
        cells = [report.Cell(1, {"ZMW": 100 * (k + 1)}), report.Cell(1, {"ZMW": 10})]
        rows.append(report.Row(k + 1, f"Ward {k + 1}", f"Ward {k + 1}", False, cells,
                               report.Cell(2, {"ZMW": 100 * (k + 1) + 10})))
    columns = [report.Cell(len(rows), {"ZMW": sum(r.cells[i].amounts["ZMW"] for r in rows)}) for i in range(2)]
    result = report.Report(None, months, ["ZMW"], rows, columns, report.Cell(), "UTC")
    (chart,) = report.chart(result)["currencies"]
    assert len(chart["series"]) == report.CHART_SERIES
    assert [s["unit_id"] for s in chart["series"][:-1]] == list(range(len(rows), len(rows) - 7, -1))  # largest
    other = chart["series"][-1]
    assert other["unit_id"] is None and other["label"] == "Other units (4)"
    assert other["data"] == [100 + 200 + 300 + 400, 40]
    assert [sum(s["data"][i] for s in chart["series"]) for i in range(2)] == chart["totals"]


def test_the_statements_do_not_grow_with_the_data(staff, tree, money, members):
    """A fixed number of statements (one GROUP BY for the payments), however many units and payments."""
    def statements() -> list[str]:
        seen: list[str] = []

        def count(_conn, _cursor, statement, *_args):
            seen.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            run(staff["admin"], {"from": "2027-01", "to": "2027-06"})
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return seen

    pay(members, tree["w1"], money["ZMW"], at(2027, 1, 5))
    small = statements()
    for key in ("w1", "w2", "w3", "w4", "d2", "c3"):
        for month in range(1, 7):
            pay(members, tree[key], money["ZMW" if month % 2 else "USD"], at(2027, month, 3))
    big = statements()
    assert len(big) == len(small)  # the actor's grants, the rows' units, the figures
    assert sum("FROM payments" in s for s in big) == 1 and sum("GROUP BY" in s for s in big) == 1
