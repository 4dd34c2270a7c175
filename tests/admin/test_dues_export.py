"""Console "Dues > Payments": the CSV and XLSX export of the list, exactly as filtered (issue 14).

What a treasurer gets: the file holds the rows the list shows for the same
filters, in the same order, with the columns a spreadsheet needs (receipt,
date, member, number, unit, tier, method, status, amount, currency,
reference, extended to, hold reason); a coordinator's file holds their wards
only; a reference typed as a formula arrives as text in both formats; the
export is audited; a bad filter, format or a unit outside the area goes back
to the list with the reason; without payments.read it is 403.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta, timezone
from decimal import Decimal
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Payment, Unit
from app.models.base import utcnow
from app.services import cards, dues, rbac
from app.services import members as member_service
from app.services.dues import tiers
from app.services.dues.export import HEADERS
from tests.conftest import login

LIST = "/admin/dues/payments/"
EXPORT = LIST + "export"
FORMULA = '=HYPERLINK("http://evil.example","Click")'


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-payment-id="(\d+)">', html)]


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def xlsx_rows(response) -> list[tuple]:
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(response.get_data()))["Payments"]
    return list(ws.iter_rows(values_only=True))


def expected_csv(payment: Payment) -> list[str]:
    """What the CSV says about one payment, built here from the payment itself."""
    p = db.session.get(Payment, payment.id)
    if p.extended_to is not None:
        extended = p.extended_to.isoformat()
    else:
        extended = "Lifetime" if p.fulfilled_at else ""
    reference = ("'" + p.reference) if p.reference.startswith(("=", "+", "-", "@")) else p.reference
    return [p.receipt_number or "", p.created_at.isoformat(timespec="seconds"), p.member.full_name,
            p.member.membership_number, db.session.get(Unit, p.unit_id).name, p.tier.name,
            dues.METHOD_LABELS[p.method], dues.STATUS_LABELS[p.status], f"{p.amount_minor / 100:.2f}", p.currency,
            reference, extended, p.hold_reason]


@pytest.fixture()
def book(staff, tree, make_member):
    """Payments in W1 (cash, mobile money with a formula as reference, one held, one pending online) and W4."""
    annual = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120.50", "currency": "ZMW",
                                                "duration_months": "12"})
    out = {}

    def member(unit, first, last):
        m = make_member(unit, first_name=first, last_name=last)
        cards.issue_card(None, m).expires_on = date.today() + timedelta(days=30)
        return m

    admin = staff["admin"]
    out["cash"] = dues.record_manual(admin, member(tree["w1"], "Ada", "Banda"), {"tier_id": annual.id,
                                                                                 "method": "cash"})
    out["formula"] = dues.record_manual(admin, member(tree["w2"], "Bwalya", "Mumba"), {
        "tier_id": annual.id, "method": "mobile_money", "reference": FORMULA, "amount_minor": 6000})
    suspended = member(tree["w1"], "Chanda", "Phiri")
    member_service.change_status(None, suspended, "suspended", "Under review")
    out["held"] = dues.record_manual(admin, suspended, {"tier_id": annual.id, "method": "cash"})
    out["pending"] = dues.new_payment(member(tree["w1"], "Daliso", "Zulu"), annual, "stripe")
    out["w4"] = dues.record_manual(admin, member(tree["w4"], "Far", "Away"), {"tier_id": annual.id,
                                                                              "method": "cash"})
    # Distinct times, so "newest first" is one order (the W4 payment the newest of all).
    for minutes, key in enumerate(("w4", "pending", "held", "formula", "cash")):
        out[key].created_at = utcnow() - timedelta(minutes=10 * (minutes + 1))
    db.session.commit()
    return out


@pytest.fixture()
def admin(client, staff):
    login(client, "admin@test.org")
    return client


@pytest.fixture()
def coordinator(app, staff, tree):
    """A ward coordinator of the constituency C1 (W1 and W2), so the unit filter has something to narrow."""
    rbac.assign_role(None, staff["coordinator"], rbac.role_by_name("ward_coordinator"), tree["c1"])
    db.session.commit()
    client = app.test_client()
    login(client, "coord@test.org")
    return client


@pytest.mark.parametrize("query", ["", "status=completed", "method=cash", "status=completed&method=cash"])
def test_the_csv_holds_exactly_the_filtered_list_in_its_order(admin, book, query):
    ids = listed(text(admin.get(f"{LIST}?{query}")))
    assert ids  # each filter lists something
    rows = csv_rows(admin.get(f"{EXPORT}?format=csv&{query}"))
    assert rows[0] == HEADERS
    assert rows[1:] == [expected_csv(db.session.get(Payment, i)) for i in ids]


def test_the_list_links_to_the_export_of_its_own_filters(admin, book):
    html = admin.get(f"{LIST}?status=completed&method=cash").get_data(as_text=True)
    link = unescape(re.search(r'id="export-csv" href="([^"]+)"', html).group(1))
    assert "format=csv" in link and "status=completed" in link and "method=cash" in link
    assert 'id="export-xlsx"' in html
    rows = csv_rows(admin.get(link))
    # Newest first, as listed: W4's payment, the held one (no receipt yet), then Ada's.
    assert [r[2] for r in rows[1:]] == ["Far Away", "Chanda Phiri", "Ada Banda"]
    assert [r[0] for r in rows[1:]] == [book["w4"].receipt_number, "", book["cash"].receipt_number]
    assert 'id="export-csv"' not in text(admin.get(f"{LIST}?status=failed"))  # nothing to export


def test_a_coordinators_export_holds_their_wards_only_and_is_audited(coordinator, book, tree):
    ids = listed(text(coordinator.get(LIST)))
    assert book["w4"].id not in ids and set(ids) == {book[k].id for k in ("cash", "formula", "held", "pending")}
    rows = csv_rows(coordinator.get(f"{EXPORT}?format=csv"))
    assert rows[1:] == [expected_csv(db.session.get(Payment, i)) for i in ids]
    assert "Far Away" not in {r[2] for r in rows}
    narrowed = csv_rows(coordinator.get(f"{EXPORT}?format=csv&unit_id={tree['w2'].id}"))
    assert [r[2] for r in narrowed[1:]] == ["Bwalya Mumba"]
    entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "payments.export")
                                      .order_by(AuditEntry.id)))
    assert [e.changes["rows"] for e in entries] == [4, 1]
    assert entries[0].changes["format"] == "csv" and entries[1].changes["filter"] == {"unit_id": tree["w2"].id}
    assert entries[0].unit_id == tree["c1"].id  # the coordinator's area: its auditors see the export


def test_the_xlsx_holds_the_same_rows_as_typed_cells(admin, book):
    ids = listed(text(admin.get(LIST)))
    rows = xlsx_rows(admin.get(f"{EXPORT}?format=xlsx"))
    assert list(rows[0]) == HEADERS
    assert [r[0] or "" for r in rows[1:]] == [db.session.get(Payment, i).receipt_number or "" for i in ids]
    by_receipt = {r[0]: r for r in rows[1:]}
    cash = db.session.get(Payment, book["cash"].id)
    row = by_receipt[cash.receipt_number]
    assert abs(row[1] - cash.created_at.astimezone(timezone.utc).replace(tzinfo=None)) < timedelta(seconds=1)
    assert (row[2], row[3], row[6], row[7]) == ("Ada Banda", cash.member.membership_number, "Cash", "Completed")
    assert Decimal(str(row[8])) == Decimal("120.50") and row[9] == "ZMW"
    assert row[11].date() == cash.extended_to and row[12] is None
    held = next(r for r in rows[1:] if r[2] == "Chanda Phiri")
    assert held[7] == "Completed" and held[11] is None and "suspended" in held[12]


def test_a_formula_in_a_reference_arrives_as_text(admin, book):
    rows = csv_rows(admin.get(f"{EXPORT}?format=csv&method=mobile_money"))
    assert rows[1][10] == "'" + FORMULA  # the quote makes Excel and LibreOffice show it as text
    ws = load_workbook(io.BytesIO(admin.get(f"{EXPORT}?format=xlsx&method=mobile_money").get_data()))["Payments"]
    cell = ws.cell(row=2, column=11)
    assert cell.value == FORMULA and cell.data_type == "s"  # a string cell, never a formula ("f")


def test_refused_exports_go_back_to_the_list_with_the_reason(admin, coordinator, book, tree):
    bad = admin.get(f"{EXPORT}?format=pdf&status=completed")
    assert bad.status_code == 302 and "status=completed" in bad.headers["Location"]
    assert "Export as csv or xlsx." in text(admin.get(bad.headers["Location"]))
    bad = admin.get(f"{EXPORT}?format=csv&since=yesterday", follow_redirects=True)
    assert "Give a date as YYYY-MM-DD" in text(bad)
    outside = coordinator.get(f"{EXPORT}?format=csv&unit_id={tree['w4'].id}", follow_redirects=True)
    assert "outside your area" in text(outside) and outside.mimetype == "text/html"
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "payments.export")) is None


def test_without_payments_read_the_export_is_403(app, book, make_user, tree):
    rbac.create_role(None, "members_reader", "", ["members.read"])
    make_user("reader@test.org", "members_reader", tree["w1"])
    db.session.commit()
    client = app.test_client()
    login(client, "reader@test.org")
    assert client.get(f"{EXPORT}?format=csv").status_code == 403
