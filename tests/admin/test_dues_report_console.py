"""Console "Dues > Report" (issue 14): the table, its totals, the chart's data, drill-down, scope, bad filters.

What staff see on ``/admin/dues/report/``: a row per unit below the chosen
one, a column per month, each cell the completed payments' number and amount
per currency, with row, column and grand totals; the figures equal sums
computed here from the payments made; the chart's JSON carries the same
numbers as the table. A coordinator sees their ward only, and another unit
answers 404. Bad months show every message with a 400, and no input is a 500.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, datetime, timezone
from html import unescape

import pytest

from app.extensions import db
from app.services import dues
from app.services.dues import report, tiers
from tests.conftest import login

URL = "/admin/dues/report/"
MONTHS = {"from": "2027-01", "to": "2027-04"}


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def table(html: str) -> dict[str, dict[str, tuple[int, dict[str, int]]]]:
    """{row ("<unit id>" or "total"): {month ("YYYY-MM" or "total"): (payments, {currency: minor})}}."""
    out = {}
    for key, body in re.findall(r'<tr data-row="([^"]+)"[^>]*>(.*?)</tr>', html, re.S):
        out[key] = {month: (int(count), {c: int(m) for c, m in re.findall(
            r'data-amount="([A-Z]{3})" data-minor="(\d+)"', inner)})
            for month, count, inner in re.findall(r'<td[^>]*data-month="([^"]+)" data-count="(\d+)">(.*?)</td>',
                                                   body, re.S)}
    return out


def chart_data(html: str) -> dict | None:
    found = re.search(r'<script type="application/json" id="dues-report-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


def at(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=timezone.utc)


@pytest.fixture()
def ledger(staff, tree, make_member):
    """Completed payments in four wards and at a district, over four months, in ZMW and USD; and some that
    must not count (refunded, pending, failed, another month)."""
    zmw = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120.50", "currency": "ZMW",
                                             "duration_months": "12", "card_type": "standard"})
    usd = tiers.create_tier(staff["admin"], {"name": "Diaspora", "price": "25", "currency": "USD",
                                             "duration_months": "12", "card_type": "standard"})
    people = {key: make_member(tree[key]) for key in ("w1", "w2", "w3", "w4", "d2")}
    made = []
    for key, tier, when, status, amount in [
        ("w1", zmw, at(2027, 1, 3), "completed", None), ("w1", zmw, at(2027, 1, 28), "completed", 5000),
        ("w1", usd, at(2027, 2, 2), "completed", None), ("w2", zmw, at(2027, 3, 9), "completed", None),
        ("w3", zmw, at(2027, 2, 20), "completed", None), ("w3", usd, at(2027, 4, 30), "completed", 4000),
        ("w4", zmw, at(2027, 1, 15), "completed", None), ("w4", usd, at(2027, 3, 1), "completed", None),
        ("d2", zmw, at(2027, 4, 4), "completed", 7777),
        ("w1", zmw, at(2027, 2, 14), "refunded", None), ("w4", zmw, at(2027, 3, 3), "refunded", None),
        ("w2", zmw, None, "pending", None), ("w3", usd, at(2027, 2, 1), "failed", None),
        ("w1", zmw, at(2026, 12, 31), "completed", None), ("w2", usd, at(2027, 5, 1), "completed", None),
    ]:
        if status in ("pending", "failed"):
            payment = dues.new_payment(people[key], tier, "cash")
            payment.status, payment.completed_at = status, when
        else:
            data = {"tier_id": tier.id, "method": "cash", **({"amount_minor": amount} if amount else {})}
            payment = dues.record_manual(staff["admin"], people[key], data)
            if status == "refunded":
                dues.refund(staff["admin"], payment, "Entered in error")
            payment.completed_at = when
        made.append(payment)
    db.session.commit()
    return made


def expected(payments, row_of) -> dict[str, dict[str, tuple[int, dict[str, int]]]]:
    """The table computed independently: completed payments of Jan-Apr 2027 (UTC), by ``row_of(unit id)``."""
    cells: dict = defaultdict(lambda: defaultdict(lambda: [0, defaultdict(int)]))
    for p in payments:
        if p.status != "completed" or not date(2027, 1, 1) <= p.completed_at.date() < date(2027, 5, 1):
            continue
        row = row_of(p.unit_id)
        if row is None:
            continue
        month = p.completed_at.strftime("%Y-%m")
        for r, m in ((str(row), month), (str(row), "total"), ("total", month), ("total", "total")):
            cells[r][m][0] += 1
            cells[r][m][1][p.currency] += p.amount_minor
    return {r: {m: (n, dict(a)) for m, (n, a) in months.items()} for r, months in cells.items()}


def nonempty(parsed):
    return {r: {m: cell for m, cell in months.items() if cell[0]} for r, months in parsed.items()
            if any(cell[0] for cell in months.values())}


def ancestor_below(tree, parent_key):
    """unit id -> the id of its ancestor (or itself) that is a child of ``parent_key`` (parent pointers)."""
    from app.models import Unit

    parent = tree[parent_key] if parent_key else None

    def row_of(unit_id):
        unit = db.session.get(Unit, unit_id)
        while unit is not None and unit.parent_id != (parent.id if parent else None):
            if parent is not None and unit.id == parent.id:
                return unit.id  # paid at the chosen unit itself
            unit = unit.parent
        return unit.id if unit is not None else None

    return row_of


def test_the_table_equals_an_independent_sum_and_rows_drill_down(client, staff, tree, ledger):
    login(client, "admin@test.org")
    response = client.get(URL, query_string=MONTHS)
    html = text(response)
    assert response.status_code == 200
    parsed = table(html)
    assert list(parsed) == [str(tree["p2"].id), str(tree["p1"].id), "total"]
    assert nonempty(parsed) == expected(ledger, ancestor_below(tree, None))
    assert "Refunded payments are left out" in html
    # Every month is a column, empty ones too, and the headers say which.
    assert re.findall(r'<th scope="col"[^>]*data-month="([^"]+)"', html) == ["2027-01", "2027-02", "2027-03",
                                                                           "2027-04"]
    # Drill down: Northern's row links to the same report for Northern, months kept.
    link = re.search(rf'<a href="([^"]+)" data-drill="{tree["p1"].id}">Northern</a>', html).group(1)
    assert f"unit_id={tree['p1'].id}" in link and "from=2027-01" in link and "to=2027-04" in link
    html = text(client.get(link))
    parsed = table(html)
    assert list(parsed) == [str(tree["d1"].id), str(tree["d2"].id), "total"]  # Kasama, Mbala
    assert nonempty(parsed) == expected(ledger, ancestor_below(tree, "p1"))
    assert 'id="up-link"' in html and "All of my area" in html
    # Mbala: its constituency, and the payment made at the district itself on a row of its own.
    html = text(client.get(URL, query_string={**MONTHS, "unit_id": tree["d2"].id}))
    parsed = table(html)
    assert list(parsed) == [str(tree["c2"].id), str(tree["d2"].id), "total"]
    assert parsed[str(tree["d2"].id)]["total"] == (1, {"ZMW": 7777})
    assert "Mbala itself" in html and f'data-drill="{tree["d2"].id}"' not in html
    assert 'Up to Northern' in html


def test_the_chart_data_matches_the_table(client, staff, tree, ledger):
    login(client, "admin@test.org")
    html = text(client.get(URL, query_string={**MONTHS, "unit_id": tree["p1"].id}))
    parsed, data = table(html), chart_data(html)
    months = ["2027-01", "2027-02", "2027-03", "2027-04"]
    assert data["months"] == months and data["labels"] == ["Jan 2027", "Feb 2027", "Mar 2027", "Apr 2027"]
    assert [c["currency"] for c in data["currencies"]] == ["USD", "ZMW"]
    for chart in data["currencies"]:
        currency = chart["currency"]
        assert chart["totals"] == [parsed["total"][m][1].get(currency, 0) for m in months]
        assert [sum(s["data"][k] for s in chart["series"]) for k in range(4)] == chart["totals"]
        for series in chart["series"]:
            assert series["data"] == [parsed[str(series["unit_id"])][m][1].get(currency, 0) for m in months]
        assert f'data-chart-currency="{currency}"' in html
    # The chart's scripts are files of this site (the CSP runs no inline script).
    assert "/static/vendor/chartjs/chart.umd.min.js" in html and "/static/js/dues-report.js" in html
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))[^>]*>", html)
    assert client.get("/static/js/dues-report.js").status_code == 200


def test_a_ward_coordinator_sees_only_their_ward(client, staff, tree, ledger):
    login(client, "coord@test.org")
    response = client.get(URL, query_string=MONTHS)
    html = text(response)
    assert response.status_code == 200
    parsed = table(html)
    assert list(parsed) == [str(tree["w1"].id), "total"]
    assert nonempty(parsed) == expected(ledger, lambda uid: uid if uid == tree["w1"].id else None)
    assert parsed["total"]["total"] == (3, {"ZMW": 12050 + 5000, "USD": 2500})
    assert "Lukashya Ward 1" in html and "Luangeni" not in html  # the unit choices too: their area only
    for unit in ("w4", "w2", "c1", "p1"):
        assert client.get(URL, query_string={"unit_id": tree[unit].id}).status_code == 404, unit
    for odd in ("999999", "abc", "0", "-3", "1e3", "٣", "9" * 40):
        assert client.get(URL, query_string={"unit_id": odd}).status_code == 404, odd


def test_bad_filters_give_every_message_with_a_400_and_never_a_500(client, staff, tree, ledger):
    login(client, "admin@test.org")
    response = client.get(URL, query_string={"from": "2027-13", "to": "next year"})
    html = text(response)
    assert response.status_code == 400 and 'id="filter-errors"' in html
    assert 'data-error="from">Give a month as YYYY-MM' in html and 'data-error="to">Give a month as YYYY-MM' in html
    assert not table(html) and chart_data(html) is None and 'id="report-empty"' not in html
    response = client.get(URL, query_string={"from": "2027-05", "to": "2027-01"})
    assert response.status_code == 400 and "The last month is before the first." in text(response)
    response = client.get(URL, query_string={"from": "2001-01", "to": "2027-01"})
    assert response.status_code == 400 and "Choose at most 36 months at a time." in text(response)
    for args in ({"from": "0000-00"}, {"to": "9999-12"}, {"from": "2027-01\x00"}, {"from": "%"},
                 {"from": "2027-01", "to": "2027-01", "unit_id": " "}, {"from": "٢٠٢٧-٠١"}, {"to": "2027-1" * 500},
                 {"from": ["2027-01", "2027-02"]}, {"unit_id": "1" * 30, "from": "x"}, {"page": "-1"}):
        status = client.get(URL, query_string=args).status_code
        assert status in (200, 400, 404), (args, status)


def test_the_defaults_and_the_empty_state(client, staff, tree, make_member):
    login(client, "admin@test.org")
    html = text(client.get(URL))
    assert 'id="report-empty"' in html and "No completed payments in your area" in html
    assert chart_data(html) is None and not table(html)
    current = report.this_month()
    assert f'value="{current:%Y-%m}"' in html and f'value="{report.add_months(current, -11):%Y-%m}"' in html
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120", "currency": "ZMW",
                                              "duration_months": "12", "card_type": "standard"})
    dues.record_manual(staff["admin"], make_member(tree["w4"]), {"tier_id": tier.id, "method": "cash"})
    db.session.commit()
    html = text(client.get(URL))  # completed just now: in this month's column
    parsed = table(html)
    assert parsed[str(tree["p2"].id)][f"{current:%Y-%m}"] == (1, {"ZMW": 12000})
    assert parsed["total"]["total"] == (1, {"ZMW": 12000}) and chart_data(html) is not None


def test_the_menu_and_who_may_open_it(client, staff):
    assert client.get(URL).status_code == 302  # anonymous: to the login page
    login(client, "admin@test.org")
    assert f'href="{URL}"' in text(client.get("/admin/dues/payments/"))
    client.get("/logout")
    login(client, "member@test.org")
    assert client.get(URL).status_code == 403
