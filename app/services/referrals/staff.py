"""Staff work on referrals: the scoped list with its filters, one referral, withdrawal, export.

One list for every face: the console's referral list, the API's
``GET /referrals`` and the export all build their WHERE with
``list_clauses(actor, filters)``, which starts from the actor's
``referrals.read`` scope (a referral lives where its referrer belongs:
``app.security``), so nobody lists, counts or exports more than they may see.

Changes go through ``app.services.referrals``: a credit is revoked with
``reverse_credit`` (a reason, a reversal entry in the ledger), an open
referral is withdrawn here (rejected with a reason, nothing to undo in the
ledger). Each is audited and flushed; the caller commits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterator, Mapping

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import aliased, selectinload

from app.database import write_aside
from app.extensions import db
from app.models import Member, Referral, Unit
from app.models.base import utcnow
from app.models.referrals import REFERRAL_SOURCES, REFERRAL_STATUSES
from app.security import authorize, has_permission, load_for, scope_filter
from app.services import audit, exports
from app.services.errors import Forbidden, ServiceError, ValidationErrors
from app.services.inputs import parse_id
from app.services.member_search import search_clause
from app.services.referrals import (
    OPEN_STATUSES,
    SOURCE_LABELS,
    STATUS_LABELS,
    check_prospect,
    record_prospect,
    reverse_credit,
    send_invitation,
)
from app.services.referrals.stats import area

READ = "referrals.read"
UPDATE = "referrals.update"
EXPORT = "members.export"
EXPORT_HEADERS = ["Referral", "Status", "Source", "Referrer", "Referrer number", "Referrer ward",
                  "Referred member", "Referred number", "Prospect name", "Prospect phone", "Prospect email",
                  "Recorded at", "Joined at", "Credited at", "Closed at", "Reason"]


@dataclass(frozen=True)
class Filters:
    """What a referral list is narrowed to; every field optional."""

    status: str | None = None
    source: str | None = None
    unit_id: int | None = None
    referrer_id: int | None = None
    q: str = ""
    since: date | None = None
    until: date | None = None

    def described(self) -> dict[str, Any]:
        """The filter as the audit log records it (dates as text, empty fields dropped)."""
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()
                if v not in (None, "")}


def _date(value: Any, field: str, errors: dict[str, str]) -> date | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]) if len(text) <= 10 else date.fromisoformat(text)
    except ValueError:
        errors[field] = "Enter a date as YYYY-MM-DD."
        return None


def parse_filters(args: Mapping[str, Any]) -> Filters:
    """Filters from a query string or form; every bad field reported at once (``ValidationErrors``)."""
    errors: dict[str, str] = {}
    status = str(args.get("status") or "").strip().lower() or None
    if status is not None and status not in REFERRAL_STATUSES:
        errors["status"] = f"Choose a status: {', '.join(REFERRAL_STATUSES)}."
    source = str(args.get("source") or "").strip().lower() or None
    if source is not None and source not in REFERRAL_SOURCES:
        errors["source"] = f"Choose a source: {', '.join(REFERRAL_SOURCES)}."
    ids: dict[str, int | None] = {}
    for name in ("unit_id", "referrer_id"):
        raw = args.get(name)
        ids[name] = parse_id(raw) if raw not in (None, "") else None
        if raw not in (None, "") and ids[name] is None:
            errors[name] = "Give a number."
    q = str(args.get("q") or "").strip()
    if len(q) > 100:
        errors["q"] = "Search for at most 100 characters."
    since = _date(args.get("since"), "since", errors)
    until = _date(args.get("until"), "until", errors)
    if since and until and until < since:
        errors["until"] = "The end date is before the start date."
    if errors:
        raise ValidationErrors(errors)
    return Filters(status, source, ids["unit_id"], ids["referrer_id"], q, since, until)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).replace(tzinfo=utcnow().tzinfo)


def list_clauses(actor: Any, filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE of the actor's referral list: their scope, then the filters.

    A unit outside the actor's sight answers ``NotFound`` and one without
    the right ``Forbidden`` (``stats.area``); a search matches the referrer's
    or the referred member's name, number, phone or email, or the prospect's name.
    """
    # Referrals of a deleted record (a duplicate, entered in error) are left out, as the figures leave them out.
    clauses: list[ColumnElement[bool]] = [Referral.referrer_id.in_(select(Member.id).where(Member.deleted_at.is_(None)))]
    scope = scope_filter(actor, READ, Referral) if actor is not None else None
    if scope is not None:
        clauses.append(scope)
    if filters.unit_id is not None:
        where = area(actor, filters.unit_id)
        clauses.append(Referral.referrer_id.in_(select(Member.id).where(where.member_clause())))
    if filters.status:
        clauses.append(Referral.status == filters.status)
    if filters.source:
        clauses.append(Referral.source == filters.source)
    if filters.referrer_id is not None:
        clauses.append(Referral.referrer_id == filters.referrer_id)
    if filters.q:
        try:
            people = search_clause(filters.q)
        except ValueError:
            raise ServiceError("This search text cannot be searched for.", field="q") from None
        terms = [func.lower(Referral.prospect_name).contains(filters.q.lower(), autoescape=True)]
        if people is not None:
            matching = select(Member.id).where(people)
            terms += [Referral.referrer_id.in_(matching), Referral.referred_member_id.in_(matching)]
        clauses.append(or_(*terms))
    if filters.since:
        clauses.append(Referral.created_at >= _midnight(filters.since))
    if filters.until:
        clauses.append(Referral.created_at < _midnight(filters.until + timedelta(days=1)))
    return clauses


def query(actor: Any, filters: Filters) -> Select:
    """The list, newest first, with the people it shows loaded alongside."""
    return (select(Referral).where(*list_clauses(actor, filters))
            .options(selectinload(Referral.referrer).selectinload(Member.unit),
                     selectinload(Referral.referred_member))
            .order_by(Referral.created_at.desc(), Referral.id.desc()))


def page(actor: Any, filters: Filters, *, offset: int = 0, limit: int = 50) -> tuple[list[Referral], int]:
    """One page of the list and how many match in all."""
    total = db.session.scalar(select(func.count()).select_from(Referral).where(*list_clauses(actor, filters))) or 0
    if offset >= total:  # past the end there is nothing to fetch (and an offset beyond 64 bits fails in SQL)
        return [], int(total)
    rows = list(db.session.scalars(query(actor, filters).offset(offset).limit(limit)))
    return rows, int(total)


def load(actor: Any, referral_id: Any, permission: str = READ) -> Referral:
    """One referral the actor may use ``permission`` on (404 outside their area, 403 without the right)."""
    return load_for(actor, Referral, referral_id, permission, message="You may not change this referral.")


def member_referrals(actor: Any, member: Member, *, offset: int = 0, limit: int = 50) -> tuple[list[Referral], int]:
    """The referrals a member made, for staff who may read referrals where the member belongs."""
    authorize(actor, READ, member, message="You may not see this member's referrals.")
    return page(actor, Filters(referrer_id=member.id), offset=offset, limit=limit)


def withdraw(actor: Any, referral: Referral, reason: str | None) -> Referral:
    """Close an open referral (invited or joined, not yet credited) as rejected, with a reason.

    Staff need ``referrals.update`` where the referrer belongs; a referrer
    may withdraw their own invitation while it is still pending. A credited
    referral is not withdrawn but revoked (``reverse_credit``), so the ledger
    shows why its points went.
    """
    own = _is_own(actor, referral)
    if not own:
        authorize(actor, UPDATE, referral, message="You may not change this referral.")
    if referral.status == "credited":
        raise ServiceError("This referral is credited: revoke the credit with a reason instead.", status=409)
    if referral.status not in OPEN_STATUSES or (own and referral.status != "pending"):
        raise ServiceError(f"This referral is {STATUS_LABELS[referral.status].lower()} and can no longer be "
                           "withdrawn.", status=409)
    reason = (reason or "").strip() or ("Withdrawn by the referrer." if own else "")
    if not reason:
        raise ServiceError("Give a reason for withdrawing the referral.", field="reason")
    if len(reason) > 500:
        raise ServiceError("A reason is at most 500 characters.", field="reason")
    before = referral.status
    referral.status, referral.reason, referral.closed_at = "rejected", reason, utcnow()
    db.session.flush()
    if not own:
        audit.record(actor, "referral.withdraw", referral, summary=f"Referral withdrawn: {reason}",
                     unit_id=referral.referrer.unit_id,
                     changes={"status": {"before": before, "after": "rejected"}, "reason": reason})
    return referral


def revoke(actor: Any, referral: Referral, reason: str | None) -> Referral:
    """Revoke a credit (``reverse_credit``: referrals.update, a reason, a reversal entry, audited)."""
    authorize(actor, UPDATE, referral, message="You may not revoke referral credit here.")  # 403 before 409
    if referral.status != "credited":
        raise ServiceError("Only a credited referral can have its credit revoked.", status=409)
    if reason and len(reason.strip()) > 500:
        raise ServiceError("A reason is at most 500 characters.", field="reason")
    reverse_credit(actor, referral, reason)
    return referral


def update_prospect(actor: Any, referral: Referral, changes: Mapping[str, Any]) -> Referral:
    """Correct an invitation's name, phone or email while it is pending (the referrer's own, or staff's).

    The same checks as recording one (``record_prospect``) apply to the
    result; every problem is reported at once.
    """
    if not _is_own(actor, referral):
        authorize(actor, UPDATE, referral, message="You may not change this referral.")
    if referral.source != "prospect" or referral.status != "pending":
        raise ServiceError("Only a pending invitation can be corrected.", status=409)
    name, phone, email = check_prospect(referral.referrer, changes.get("name", referral.prospect_name),
                                        changes.get("phone", referral.prospect_phone),
                                        changes.get("email", referral.prospect_email), excluding=referral)
    before = {"name": referral.prospect_name, "phone": referral.prospect_phone, "email": referral.prospect_email}
    after = {"name": name, "phone": phone, "email": email}
    referral.prospect_name, referral.prospect_phone, referral.prospect_email = name, phone, email
    db.session.flush()
    if before["email"] != email and email:
        send_invitation(referral)  # the invitation goes to the corrected address
    if not _is_own(actor, referral):
        audit.record(actor, "referral.update", referral, summary="Invitation corrected",
                     unit_id=referral.referrer.unit_id,
                     changes={k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]})
    return referral


def record_for(actor: Any, referrer: Member, name: Any, phone: Any, email: Any) -> Referral:
    """Staff record an invitation on a member's behalf (referrals.update where the member belongs)."""
    authorize(actor, UPDATE, referrer, message="You may not record referrals for this member.")
    referral = record_prospect(referrer, name, phone, email)
    audit.record(actor, "referral.create", referral, summary=f"Invitation recorded for {referrer.full_name}",
                 unit_id=referrer.unit_id)
    return referral


def _is_own(actor: Any, referral: Referral) -> bool:
    member_id = getattr(actor, "member_id", None)
    return member_id is not None and member_id == referral.referrer_id and not has_permission(actor, UPDATE)


# --- export -----------------------------------------------------------------------------


def _export_rows(clauses: list[ColumnElement[bool]]) -> Iterator[list[Any]]:
    referrer, referred = aliased(Member), aliased(Member)

    stmt = (select(Referral.id, Referral.status, Referral.source, referrer.first_name, referrer.last_name,
                   referrer.membership_number, Unit.name, referred.first_name, referred.last_name,
                   referred.membership_number, Referral.prospect_name, Referral.prospect_phone,
                   Referral.prospect_email, Referral.created_at, Referral.registered_at, Referral.credited_at,
                   Referral.closed_at, Referral.reason)
            .join(referrer, referrer.id == Referral.referrer_id).join(Unit, Unit.id == referrer.unit_id)
            .outerjoin(referred, referred.id == Referral.referred_member_id)
            .where(*clauses).order_by(Referral.id))
    for r in db.session.execute(stmt.execution_options(yield_per=exports.CHUNK)):
        yield [r[0], STATUS_LABELS.get(r[1], r[1]), SOURCE_LABELS.get(r[2], r[2]), f"{r[3]} {r[4]}", r[5], r[6],
               f"{r[7]} {r[8]}" if r[7] else "", r[9] or "", r[10] or "", r[11] or "", r[12] or "",
               r[13], r[14], r[15], r[16], r[17] or ""]


def export(actor: Any, filters: Filters, fmt: str = "csv", *, source: str = "console") -> exports.Export:
    """The actor's filtered referral list as CSV or XLSX, audited before the first byte goes out.

    Names and contact details are personal data: exporting needs
    ``members.export`` as well as reading referrals, as exporting members does.
    """
    if actor is not None and not has_permission(actor, EXPORT):
        raise Forbidden("You may not export referrals.", permission=EXPORT)
    fmt = exports.check_format(fmt)
    clauses = list_clauses(actor, filters)
    rows = db.session.scalar(select(func.count()).select_from(Referral).where(*clauses)) or 0
    exports.check_size(fmt, rows, noun="referrals")
    shown = ", ".join(f"{k}={v}" for k, v in filters.described().items()) or "no filter"
    with write_aside():
        audit.record(actor, "referrals.export", None, unit_id=filters.unit_id,
                     summary=f"Exported {rows:,} referrals as {fmt.upper()} ({shown})",
                     changes={"format": fmt, "rows": rows, "filter": filters.described(), "source": source})
    if fmt == "csv":
        body = exports.table_csv(EXPORT_HEADERS, _export_rows(clauses))
    else:
        body = exports.table_xlsx(lambda target: exports.write_table_xlsx(
            EXPORT_HEADERS, _export_rows(clauses), target, sheet="Referrals"))
    return exports.Export(fmt, int(rows), body, stem="referrals")
