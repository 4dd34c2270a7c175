"""The dues report (issue 14): completed payments per unit and month, with totals and the chart's figures.

Which payments: status "completed" within the actor's ``payments.read``
scope, exactly the WHERE of the payments list (``payments.list_clauses``),
so the report never counts what the list would not show. Refunded payments
are left out: a refund takes the payment out of the month it was completed
in, so a past month's figures go down when one of its payments is refunded.
Pending, failed and cancelled payments never count (no money arrived). A
held payment is completed (the money came), so it counts.

Months are calendar months in the organisation's time zone (``TIMEZONE``),
by ``completed_at``: the first moment of each month is computed here as a
UTC instant and the database takes each month's payments between two of
those instants. The same statement runs on SQLite and PostgreSQL, and a payment
made at 00:30 on the 1st in Lusaka (22:30 UTC the day before) is counted in
the month it was made there, DST changes included.

Rows: the children of the chosen unit; a payment made anywhere below a child
counts for the child (its unit rolls up through the materialised path, as
the referral statistics' unit leaderboard does), and payments made at the
chosen unit itself get a row of their own. With no unit chosen the report
starts at the top of the actor's area: the whole organisation's top-level
units for a global reader, the area's own unit for staff with one area, one
row per area for staff with several separate ones (a coordinator of two
wards in different constituencies).

Set-based: one statement, grouped twice: per (unit, month, currency) over
``ix_payments_status_completed``, then those groups rolled up to the rows'
units through the unit paths, in the database; what comes back is at most
rows x months x currencies, added up into totals here (``_grouped``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Mapping

from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.orm import aliased

from app.database import in_values
from app.extensions import db
from app.models import Payment, Unit
from app.models.base import utcnow
from app.security import authorize, scope_paths
from app.services import dues
from app.services.dues import payments
from app.services.errors import Forbidden, NotFound, ValidationErrors
from app.services.events.times import org_timezone
from app.services.inputs import parse_id

PERMISSION = dues.READ
DEFAULT_MONTHS = 12
MAX_MONTHS = 36  # three years side by side is already a wide table
FIRST_YEAR, LAST_YEAR = 2000, 2200
CHART_SERIES = 8  # units drawn one by one in a currency's chart; the rest are summed as "Other units"
_MONTH = re.compile(r"([0-9]{4})-([0-9]{1,2})")
MONTH_BAD = "Give a month as YYYY-MM, for example 2027-01."


@dataclass(frozen=True)
class Filters:
    """What the report covers: ``unit`` (None: the top of the actor's area, ``tops``) and the months."""

    unit: Unit | None
    tops: tuple[Unit, ...]  # with no unit: the rows' units (top-level units, or the actor's separate areas)
    first: date  # the first day of the first month
    last: date  # the first day of the last month

    @property
    def months(self) -> list[date]:
        return month_range(self.first, self.last)


@dataclass
class Cell:
    """Completed payments of one row and month (or a total): how many, and the amount per currency."""

    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> minor units

    def add(self, currency: str, count: int, amount: int) -> None:
        self.count += count
        self.amounts[currency] = self.amounts.get(currency, 0) + amount


@dataclass
class Row:
    unit_id: int
    name: str
    label: str
    own: bool  # payments made at the chosen unit itself, not below one of its children
    cells: list[Cell]
    total: Cell = field(default_factory=Cell)


@dataclass
class Report:
    unit: Unit | None
    months: list[date]
    currencies: list[str]
    rows: list[Row]
    columns: list[Cell]  # per month, every row
    total: Cell
    timezone: str

    @property
    def empty(self) -> bool:
        return self.total.count == 0


# --- months --------------------------------------------------------------------------------


def add_months(month: date, n: int) -> date:
    """The first day of the month ``n`` months after (or before) ``month``'s."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_range(first: date, last: date) -> list[date]:
    """First days of the months from ``first`` to ``last``, both included."""
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [add_months(first, k) for k in range(max(0, count))]


def this_month(now: datetime | None = None) -> date:
    """The current month where the organisation is (its first day)."""
    local = (now or utcnow()).astimezone(org_timezone())
    return date(local.year, local.month, 1)


def month_start(month: date) -> datetime:
    """The first moment of ``month`` in the organisation's time zone, as a UTC instant (what is stored)."""
    local = datetime(month.year, month.month, 1, tzinfo=org_timezone())
    return local.astimezone(timezone.utc)


def _month(raw: Any, errors: dict[str, str], name: str) -> date | None:
    text = str(raw or "").strip()
    if not text:
        return None
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        errors[name] = MONTH_BAD
        return None
    year = int(match.group(1))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        errors[name] = f"Give a month between {FIRST_YEAR}-01 and {LAST_YEAR}-12."
        return None
    return date(year, int(match.group(2)), 1)


# --- where: the unit and the top of the actor's area ---------------------------------------


def tops_of(actor: Any) -> tuple[list[Unit], bool]:
    """The units the actor's ``payments.read`` area starts at, and whether it is everywhere.

    Everywhere: the top-level units. Otherwise the units of the actor's
    assignments (``scope_paths`` already drops one inside another).
    ``Forbidden`` when the actor reads payments nowhere (the console's door
    answers them 403 already; a command or task gets the same).
    """
    paths = scope_paths(actor, PERMISSION) if actor is not None else None
    if paths is not None and not paths:
        raise Forbidden("You may not see payments.", permission=PERMISSION)
    stmt = select(Unit).where(Unit.parent_id.is_(None)) if paths is None else select(Unit).where(Unit.path.in_(paths))
    return sorted(db.session.scalars(stmt), key=lambda u: (u.name.casefold(), u.id)), paths is None


def chosen_unit(actor: Any, raw: Any) -> Unit:
    """The unit named by ``raw`` (an id), through ``app.security.authorize``.

    Unknown, malformed or outside everything the actor sees: ``NotFound`` (the
    same answer, so the report reveals nothing); seen without ``payments.read``
    there: ``Forbidden``.
    """
    pk = parse_id(raw)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None:
        raise NotFound()
    authorize(actor, PERMISSION, unit, message="You may not see payments there.")
    return unit


def parse_filters(actor: Any, args: Mapping[str, Any], *, now: datetime | None = None) -> Filters:
    """The report's filters from a query string (``unit_id``, ``from``, ``to``); bad months all at once.

    The unit is an access question first (``chosen_unit``: 404/403). Months
    are YYYY-MM; without either the report shows the last ``DEFAULT_MONTHS``
    months up to the current one; with one of them, ``DEFAULT_MONTHS``
    months from or up to it (never past the current month when starting
    before it). Every bad month field gets its message (``ValidationErrors``).
    """
    raw_unit = str(args.get("unit_id") or "").strip()
    unit = chosen_unit(actor, raw_unit) if raw_unit else None
    tops: tuple[Unit, ...] = ()
    if unit is None:
        found, everywhere = tops_of(actor)
        if len(found) == 1 and not everywhere:
            unit = found[0]  # one area: start at its unit, rows for the units below it
        else:
            tops = tuple(found)
    errors: dict[str, str] = {}
    first = _month(args.get("from"), errors, "from")
    last = _month(args.get("to"), errors, "to")
    if errors:
        raise ValidationErrors(errors)
    current = this_month(now)
    if first is None and last is None:
        last = current
    if first is None:
        first = add_months(last, -(DEFAULT_MONTHS - 1))
    if last is None:
        last = add_months(first, DEFAULT_MONTHS - 1)
        if first <= current < last:
            last = current
    if last < first:
        errors["to"] = "The last month is before the first."
    elif len(month_range(first, last)) > MAX_MONTHS:
        errors["to"] = f"Choose at most {MAX_MONTHS} months at a time."
    if errors:
        raise ValidationErrors(errors)
    return Filters(unit, tops, first, last)


# --- the figures ---------------------------------------------------------------------------


def _grouped(actor: Any, filters: Filters, months: list[date], row_ids: list[int]):
    """(row unit id, month index, currency, payments, amount): one statement, grouped twice.

    The completed payments in the actor's scope (``list_clauses``) are a CTE
    (``paid``); each month groups its own payments per
    (unit, currency), the months' groups are put together (UNION ALL), and
    those groups (a few thousand at most) are rolled up to the rows' units:
    each unit is joined to the row whose path its own path starts with, and a
    unit under none of them is the chosen unit itself (its own row).

    Why a GROUP BY per month rather than one over every payment with the
    month as a CASE: SQLite groups by sorting, and twelve sorts of a month's
    payments are much cheaper than one sort of them all (the whole
    organisation's year, 540,000 payments: 345 ms instead of 505,
    bench/dues_report.py); no CASE to evaluate either. The CTE is NOT
    MATERIALIZED (SQLite 3.35, PostgreSQL 12): each month reads its own range
    of ``ix_payments_status_completed``, and the scope's parameters are bound
    once, however many months.
    """
    starts = [month_start(m) for m in months] + [month_start(add_months(months[-1], 1))]
    where = payments.list_clauses(actor, payments.Filters("completed", None, getattr(filters.unit, "id", None),
                                                          None, None))
    paid = (select(Payment.unit_id, Payment.completed_at, Payment.currency, Payment.amount_minor)
            .where(*where).cte("paid").prefix_with("NOT MATERIALIZED"))  # each month its range: no other
    per_month = [select(paid.c.unit_id, literal_column(str(k)).label("month"), paid.c.currency,
                        func.count().label("n"), func.sum(paid.c.amount_minor).label("amount"))
                 .where(paid.c.completed_at >= starts[k], paid.c.completed_at < starts[k + 1])
                 .group_by(paid.c.unit_id, paid.c.currency) for k in range(len(months))]
    per_unit = (union_all(*per_month) if len(per_month) > 1 else per_month[0]).subquery("per_unit")
    unit, top = aliased(Unit), aliased(Unit)
    row_of = (select(unit.id.label("unit_id"), top.id.label("row_id"))
              .join(top, unit.path.startswith(top.path)).where(in_values(top.id, row_ids)).subquery("row_of"))
    rolled = (select(func.coalesce(row_of.c.row_id, per_unit.c.unit_id).label("row_id"), per_unit.c.month,
                     per_unit.c.currency, per_unit.c.n, per_unit.c.amount)
              .select_from(per_unit.outerjoin(row_of, row_of.c.unit_id == per_unit.c.unit_id)).subquery("rolled"))
    return db.session.execute(
        select(rolled.c.row_id, rolled.c.month, rolled.c.currency, func.sum(rolled.c.n), func.sum(rolled.c.amount))
        .group_by(rolled.c.row_id, rolled.c.month, rolled.c.currency)).all()


def _rows(filters: Filters, n_months: int) -> tuple[list[Row], Row | None]:
    """The report's rows, no figures yet: the chosen unit's children (or the tops), and its own row."""
    unit = filters.unit
    if unit is not None:
        units = sorted(db.session.scalars(select(Unit).where(Unit.parent_id == unit.id)),
                       key=lambda u: (u.name.casefold(), u.id))
    else:
        units = list(filters.tops)
    rows = [Row(u.id, u.name, u.name, False, [Cell() for _ in range(n_months)]) for u in units]
    own = None
    if unit is not None:
        own = Row(unit.id, unit.name, f"{unit.name} itself" if rows else unit.name, True,
                  [Cell() for _ in range(n_months)])
    return rows, own


def report(actor: Any, filters: Filters) -> Report:
    """Completed payments per row unit and month, with row, column and grand totals (see the module)."""
    months = filters.months
    rows, own = _rows(filters, len(months))
    by_id = {row.unit_id: row for row in rows}
    if own is not None:
        by_id[own.unit_id] = own
    columns = [Cell() for _ in months]
    total = Cell()
    currencies: set[str] = set()
    for row_id, index, currency, count, amount in _grouped(actor, filters, months, [r.unit_id for r in rows]):
        row = by_id.get(row_id)
        if row is None:  # cannot happen: the WHERE keeps payments inside the rows' units
            continue
        count, amount, index = int(count), int(amount or 0), int(index)
        row.cells[index].add(currency, count, amount)
        row.total.add(currency, count, amount)
        columns[index].add(currency, count, amount)
        total.add(currency, count, amount)
        currencies.add(currency)
    if own is not None and (own.total.count or not rows):
        rows.append(own)
    return Report(filters.unit, months, sorted(currencies), rows, columns, total, str(org_timezone()))


def chart(result: Report) -> dict[str, Any]:
    """The chart's figures: per currency, the amount (minor units) per month, one series per row unit.

    Amounts in different currencies cannot be added, so each currency has a
    chart of its own. Rows with nothing in that currency are left out; past
    ``CHART_SERIES`` units, the largest ``CHART_SERIES - 1`` are drawn and the
    rest summed as "Other units", so a chart stays readable. The series of a
    month add up to the month's total in the table.
    """
    out = []
    for currency in result.currencies:
        paying = [r for r in result.rows if r.total.amounts.get(currency)]
        paying.sort(key=lambda r: -r.total.amounts[currency])
        shown, rest = (paying, []) if len(paying) <= CHART_SERIES else (paying[:CHART_SERIES - 1],
                                                                        paying[CHART_SERIES - 1:])
        series = [{"label": r.label, "unit_id": r.unit_id,
                   "data": [cell.amounts.get(currency, 0) for cell in r.cells]} for r in shown]
        if rest:
            series.append({"label": f"Other units ({len(rest)})", "unit_id": None,
                           "data": [sum(r.cells[k].amounts.get(currency, 0) for r in rest)
                                    for k in range(len(result.months))]})
        out.append({"currency": currency, "series": series,
                    "totals": [cell.amounts.get(currency, 0) for cell in result.columns]})
    return {"months": [m.strftime("%Y-%m") for m in result.months],
            "labels": [m.strftime("%b %Y") for m in result.months], "currencies": out}
