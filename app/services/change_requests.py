"""Requests members make about their own record: changing protected fields, and erasing their account.

*Change requests.* Name (first, last, other names), date of birth, national
ID and ward identify a member and place them in the organisation, so the
member asks (``request_change``) and staff decide. Rules:

- the values are checked with the member registry's rules when asked (all
  fields at once); only fields that differ from the record are kept, with
  the values on record next to them; a national ID another member holds is
  refused at once without saying whose;
- one pending request per member: a second is *refused* (409) while one is
  pending; the member may withdraw the pending one and ask again. (Replacing
  silently would let a change already under review shift under the reviewer.)
- staff with ``members.update`` over the member's unit approve (the change
  goes through ``members.update_member``, so duplicate and scope rules apply:
  a national ID taken since, or a ward outside the approver's area, refuses
  the approval with the registry's message) or reject with a reason. The
  member gets a mail either way. Staff lists are scoped with ``members.read``.

*Erasure requests.* ``request_erasure`` records the wish (idempotent while
one is pending); nothing is deleted. Staff see them scoped like members and
mark them handled with a note; that needs ``members.delete`` over the member,
since handling one means deciding what to delete.

Services flush; the caller commits once. Audit entries for every step.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    REQUESTABLE_FIELDS,
    ErasureRequest,
    Member,
    MemberChangeRequest,
    Unit,
)
from app.models.base import utcnow
from app.security import authorize, load_for, scoped
from app.services import audit, mail, notifications, self_service
from app.services import members as member_service
from app.services.errors import DuplicateError, ServiceError
from app.services.inputs import parse_id
from app.services.members import text_value
from app.services.validation import FieldErrors

FIELD_LABELS = {"first_name": "First name", "last_name": "Last name", "other_names": "Other names",
                "date_of_birth": "Date of birth", "national_id": "National ID", "unit_id": "Ward"}
READ, DECIDE, HANDLE_ERASURE = "members.read", "members.update", "members.delete"
ONE_PENDING = ("You already have a change request waiting for a decision. Withdraw it first if you want to ask "
               "for something else.")


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def unit_choices(member: Member) -> list[Unit]:
    """Units a member may ask to move to: those at the level of their current unit (wards, usually)."""
    return list(db.session.scalars(select(Unit).where(Unit.level == member.unit.level).order_by(Unit.path)))


def display(field: str, value: Any) -> str:
    """A requested or old value as a person reads it (a ward by name, not id)."""
    if value in (None, ""):
        return "(none)"
    if field == "unit_id":
        unit = db.session.get(Unit, value) if isinstance(value, int) else None
        return f"{unit.name} ({unit.code})" if unit is not None else f"unit {value}"
    return str(value)


# --- the member's side -------------------------------------------------------------------


def pending_change(member: Member) -> MemberChangeRequest | None:
    return db.session.scalar(select(MemberChangeRequest).where(MemberChangeRequest.member_id == member.id,
                                                               MemberChangeRequest.status == "pending").limit(1))


def recent_changes(member: Member, limit: int = 5) -> list[MemberChangeRequest]:
    return list(db.session.scalars(select(MemberChangeRequest).where(MemberChangeRequest.member_id == member.id)
                                   .order_by(MemberChangeRequest.id.desc()).limit(limit)))


def clean_change(member: Member, data: dict[str, Any]) -> dict[str, Any]:
    """The requested fields, checked (all at once) and reduced to those that differ from the record."""
    errors = FieldErrors()
    for key in sorted(set(data) - set(REQUESTABLE_FIELDS)):
        errors.add(key, f"'{key}' cannot be changed by a request.")
    given = {k: v for k, v in data.items() if k in REQUESTABLE_FIELDS}
    values: dict[str, Any] = {}
    with errors.check():
        values = member_service.clean(given, partial=True)
    if "unit_id" in given and not errors.has("unit_id"):  # checked even when other fields failed
        pk = parse_id(given["unit_id"])
        unit = db.session.get(Unit, pk) if pk is not None else None
        if unit is None or unit.level != member.unit.level:
            errors.add("unit_id", "Choose one of the listed wards.")
    errors.raise_if_any()
    changed = {k: v for k, v in values.items() if v != getattr(member, k)}
    if not changed:
        raise ServiceError("Nothing to change: these are the values on record.")
    return changed


def _add_one_pending(req: MemberChangeRequest | ErasureRequest, refusal: ServiceError) -> None:
    """Insert a pending request; a concurrent one that won the partial unique index makes this ``refusal``."""
    try:
        with db.session.begin_nested():
            db.session.add(req)
            db.session.flush()
    except IntegrityError:
        raise refusal from None


def request_change(actor: Any, data: dict[str, Any], note: str | None = None) -> MemberChangeRequest:
    """Ask staff to change the actor's name, date of birth, national ID or ward (one pending at a time)."""
    member = self_service.own_member(actor, "profile.update_own")
    note = text_value(note, "note", "Note", 1000)
    changed = clean_change(member, data)
    if pending_change(member) is not None:
        raise ServiceError(ONE_PENDING, status=409)
    if "national_id" in changed:
        member_service.check_duplicates(actor, national_id=changed["national_id"], phone=None, email=None,
                                        exclude_id=member.id)
    req = MemberChangeRequest(member=member, fields={k: _json(v) for k, v in changed.items()},
                              old_values={k: _json(getattr(member, k)) for k in changed}, status="pending",
                              note=note, requested_by_id=getattr(actor, "id", None), created_at=utcnow())
    _add_one_pending(req, ServiceError(ONE_PENDING, status=409))
    audit.record(actor, "change_request.create", req, unit_id=member.unit_id,
                 summary=f"{member.full_name} asked to change {', '.join(FIELD_LABELS[k] for k in changed)}",
                 changes={k: {"before": req.old_values[k], "after": v} for k, v in req.fields.items()})
    return req


def withdraw_change(actor: Any) -> MemberChangeRequest:
    """The actor withdraws their pending change request (a 409 when there is none)."""
    member = self_service.own_member(actor, "profile.update_own")
    req = pending_change(member)
    if req is None:
        raise ServiceError("You have no change request waiting for a decision.", status=409)
    req.status, req.decided_at = "withdrawn", utcnow()
    db.session.flush()
    audit.record(actor, "change_request.withdraw", req, unit_id=member.unit_id,
                 summary=f"{member.full_name} withdrew their change request")
    return req


# --- the staff's side --------------------------------------------------------------------


def visible_changes(actor: Any, status: str | None = "pending") -> Select:
    """Change requests of the members ``actor`` may read, oldest first (the queue); a SELECT to page."""
    stmt = select(MemberChangeRequest).join(Member, Member.id == MemberChangeRequest.member_id) \
        .where(Member.deleted_at.is_(None))
    if status:
        stmt = stmt.where(MemberChangeRequest.status == status)
    return scoped(stmt, actor, READ, MemberChangeRequest).order_by(MemberChangeRequest.created_at,
                                                                   MemberChangeRequest.id)


def load_change(actor: Any, request_id: Any) -> MemberChangeRequest:
    return load_for(actor, MemberChangeRequest, request_id, READ)


def _decidable(actor: Any, req: MemberChangeRequest) -> None:
    authorize(actor, DECIDE, req, message="You may not decide change requests for this member.")
    if req.status != "pending":
        raise ServiceError(f"This request has already been {req.status}.", status=409)
    if req.member.deleted_at is not None:
        raise ServiceError("This member has been deleted; the request cannot be decided.", status=409)


def approve(actor: Any, req: MemberChangeRequest, note: str | None = None) -> MemberChangeRequest:
    """Apply the requested change through the member registry and tell the member."""
    _decidable(actor, req)
    note = text_value(note, "note", "Note", 1000)
    try:
        member_service.update_member(actor, req.member, dict(req.fields))
    except DuplicateError as exc:
        raise ServiceError(f"Cannot approve: {exc.message} Reject the request with a reason, or sort out the other "
                           "record first.", status=409) from None
    except ServiceError as exc:
        raise ServiceError(f"Cannot approve: {exc.message}", status=exc.status if exc.status != 422 else 409) \
            from None
    req.status, req.reason = "approved", note
    req.decided_by_id, req.decided_at = getattr(actor, "id", None), utcnow()
    db.session.flush()
    audit.record(actor, "change_request.approve", req, unit_id=req.member.unit_id,
                 summary=f"Approved the change request of {req.member.full_name}")
    _tell(req, "profile.change-approved")
    return req


def reject(actor: Any, req: MemberChangeRequest, reason: str | None) -> MemberChangeRequest:
    """Refuse the request with a reason the member is told."""
    _decidable(actor, req)
    reason = text_value(reason, "reason", "Reason", 1000, required=True)
    req.status, req.reason = "rejected", reason
    req.decided_by_id, req.decided_at = getattr(actor, "id", None), utcnow()
    db.session.flush()
    audit.record(actor, "change_request.reject", req, unit_id=req.member.unit_id,
                 summary=f"Rejected the change request of {req.member.full_name}: {reason}")
    _tell(req, "profile.change-rejected")
    return req


def _tell(req: MemberChangeRequest, kind: str) -> None:
    rows = [(FIELD_LABELS[k], display(k, req.old_values.get(k)), display(k, v)) for k, v in req.fields.items()]
    # An optional notice: mailed unless the member switched "request.decided" off, with an unsubscribe link.
    notifications.send_optional_mail(req.member, "request.decided", kind,
                                     {"request": req, "rows": rows, "reason": req.reason,
                                      "profile_link": mail.link_to("portal.profile")}, key=f"{kind}:{req.id}")
    approved = req.status == "approved"
    notifications.notify(req.member, "request.decided",
                         "Your change request was approved" if approved else "Your change request was not approved",
                         ", ".join(label for label, _old, _new in rows) + ("" if approved else f". Reason: {req.reason}"),
                         "/profile#changes")


# --- erasure -----------------------------------------------------------------------------


def pending_erasure(member: Member) -> ErasureRequest | None:
    return db.session.scalar(select(ErasureRequest).where(ErasureRequest.member_id == member.id,
                                                          ErasureRequest.status == "pending").limit(1))


def request_erasure(actor: Any, reason: str | None = None) -> tuple[ErasureRequest, bool]:
    """Record that the actor asks for their account to be erased; ``(request, created)``. Nothing is deleted."""
    member = self_service.own_member(actor, "profile.update_own")
    reason = text_value(reason, "reason", "Reason", 1000)
    existing = pending_erasure(member)
    if existing is not None:
        return existing, False
    req = ErasureRequest(member=member, status="pending", reason=reason, requested_by_id=getattr(actor, "id", None),
                         created_at=utcnow())
    try:
        _add_one_pending(req, ServiceError("Your request is already waiting for staff.", status=409))
    except ServiceError:
        return pending_erasure(member), False  # a racing request got there first: that one stands
    audit.record(actor, "erasure_request.create", req, unit_id=member.unit_id,
                 summary=f"{member.full_name} asked for their account to be erased")
    return req, True


def visible_erasures(actor: Any, status: str | None = "pending") -> Select:
    """Erasure requests of the members ``actor`` may read (deleted members too: that is the point), oldest first."""
    stmt = select(ErasureRequest)
    if status:
        stmt = stmt.where(ErasureRequest.status == status)
    return scoped(stmt, actor, READ, ErasureRequest).order_by(ErasureRequest.created_at, ErasureRequest.id)


def load_erasure(actor: Any, request_id: Any) -> ErasureRequest:
    return load_for(actor, ErasureRequest, request_id, READ)


def handle_erasure(actor: Any, req: ErasureRequest, note: str | None) -> ErasureRequest:
    """Mark an erasure request handled, saying what was done (``members.delete`` over the member)."""
    authorize(actor, HANDLE_ERASURE, req, message="You may not handle erasure requests for this member.")
    if req.status != "pending":
        raise ServiceError("This request has already been handled.", status=409)
    note = text_value(note, "note", "Note", 2000, required=True)
    req.status, req.note = "handled", note
    req.handled_by_id, req.handled_at = getattr(actor, "id", None), utcnow()
    db.session.flush()
    audit.record(actor, "erasure_request.handle", req, unit_id=req.member.unit_id,
                 summary=f"Handled the erasure request of {req.member.full_name}: {note}")
    return req
