"""The member registry: validation, duplicates, status lifecycle, soft delete and photos.

Every change made here is checked against the actor's scope (a coordinator
cannot create or move a member outside their wards) and written to the audit
log. Input arrives as plain values, from forms, the API or imports alike.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select

from app.database import newest_ids_page
from app.extensions import db
from app.models import (
    GENDERS,
    MEMBER_STATUSES,
    Member,
    MemberStatusChange,
    Tag,
    Unit,
)
from app.models.base import fold, utcnow
from app.security import authorize, can, unit_choice
from app.services import audit
from app.services.counters import allocate
from app.services.errors import DuplicateError, ServiceError
from app.services.inputs import unit_id_value
from app.services.member_photos import remove_photo, set_photo  # noqa: F401  (photos live there; named here too)
from app.services.validation import FieldErrors

# Allowed status changes. Deceased is final; expelled members may only re-apply (pending).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"active", "resigned", "deceased"}),
    "active": frozenset({"suspended", "lapsed", "resigned", "deceased", "expelled"}),
    "suspended": frozenset({"active", "resigned", "deceased", "expelled"}),
    "lapsed": frozenset({"active", "resigned", "deceased"}),
    "resigned": frozenset({"pending", "active", "deceased"}),
    "expelled": frozenset({"pending"}),
    "deceased": frozenset(),
}
INITIAL_STATUSES = ("pending", "active")

EDITABLE_FIELDS = (
    "first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id",
    "phone", "email", "address", "unit_id", "joined_on", "notes", "tags",
)
NATIONAL_ID_RE = re.compile(r"^[A-Z0-9/-]{4,40}$")
MAX_TAGS = 50


# --- normalisation --------------------------------------------------------------------


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """E.164 form of a phone number, read in the organisation's default country."""
    if raw is None or not str(raw).strip():
        return None
    region = region or current_app.config["DEFAULT_PHONE_REGION"]
    try:
        number = phonenumbers.parse(str(raw).strip(), region)
    except phonenumbers.NumberParseException:
        raise ServiceError(f"'{raw}' is not a phone number.", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise ServiceError(f"'{raw}' is not a valid phone number.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str | None) -> str | None:
    if raw is None or not str(raw).strip():
        return None
    try:
        result = validate_email(str(raw).strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ServiceError(f"'{raw}' is not a valid email address: {exc}", field="email") from None
    return result.normalized.lower()


def normalize_national_id(raw: str | None) -> str | None:
    if raw is None or not str(raw).strip():
        return None
    value = re.sub(r"\s+", "", str(raw)).upper()
    if not NATIONAL_ID_RE.match(value):
        raise ServiceError(
            "A national ID number is 4-40 letters, digits, '/' or '-'.", field="national_id"
        )
    return value


def _as_date(value: Any, field: str, label: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ServiceError(f"{label} must be a date like 1990-04-25.", field=field) from None


def text_value(value: Any, field: str, label: str, max_len: int, required: bool = False) -> str | None:
    """A trimmed text field: None when empty, a field error when required or too long."""
    text = str(value).strip() if value is not None else ""
    if not text:
        if required:
            raise ServiceError(f"{label} is required.", field=field)
        return None
    if len(text) > max_len:
        raise ServiceError(f"{label} is too long ({max_len} characters at most).", field=field)
    return text


def clean(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise member fields; with ``partial`` only the keys given.

    Every field is checked before anything is refused: the ``ValidationErrors``
    raised names each field at fault, so a form shows them all after one submit.
    """
    errors = FieldErrors()
    for key in sorted(set(data) - set(EDITABLE_FIELDS) - {"status", "status_reason"}):
        errors.add(key, f"Unknown field '{key}'.")
    out: dict[str, Any] = {}

    def wanted(key: str) -> bool:
        return key in data or not partial

    def text(key: str, label: str, max_len: int, required: bool = False) -> None:
        if wanted(key):
            with errors.check():
                out[key] = text_value(data.get(key), key, label, max_len, required=required)

    text("first_name", "First name", 80, required=True)
    text("last_name", "Last name", 80, required=True)
    text("other_names", "Other names", 120)
    if wanted("gender"):
        gender = (str(data.get("gender") or "")).strip().lower() or None
        if gender is not None and gender not in GENDERS:
            errors.add("gender", f"Gender must be one of: {', '.join(GENDERS)}.")
        out["gender"] = gender
    if wanted("date_of_birth"):
        with errors.check():
            dob = _as_date(data.get("date_of_birth"), "date_of_birth", "Date of birth")
            if dob is not None and (dob > date.today() or dob.year < 1900):
                raise ServiceError("Date of birth must be in the past (and after 1900).", field="date_of_birth")
            out["date_of_birth"] = dob
    for key, normalize in (("national_id", normalize_national_id), ("phone", normalize_phone),
                           ("email", normalize_email)):
        if wanted(key):
            with errors.check():
                out[key] = normalize(data.get(key))
    text("address", "Address", 500)
    text("notes", "Notes", 5000)
    if wanted("joined_on"):
        with errors.check():
            joined = _as_date(data.get("joined_on"), "joined_on", "Joined on")
            if joined is not None and joined > date.today():
                raise ServiceError("Joined on cannot be in the future.", field="joined_on")
            if joined is not None or not partial:
                out["joined_on"] = joined or date.today()
    if wanted("unit_id"):
        with errors.check():
            out["unit_id"] = _unit_id(data.get("unit_id"))
    if "tags" in data:
        with errors.check():
            out["tags"] = _tag_names(data.get("tags"))
    errors.raise_if_any()
    return out


def _unit_id(unit_id: Any) -> int:
    return unit_id_value(unit_id, "Choose the member's unit (usually a ward).")


def _tag_names(tags: Any) -> list[str]:
    """Tag names, lower-cased, de-duplicated and sorted; MAX_TAGS at most."""
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, (list, tuple, type(None))):
        raise ServiceError("Tags are a list of names.", field="tags")
    names: list[str] = []
    for tag in tags or []:
        name = str(tag).strip().lower()
        if name and name not in names:
            if len(name) > 60:
                raise ServiceError("A tag is 60 characters at most.", field="tags")
            names.append(name)
    if len(names) > MAX_TAGS:
        raise ServiceError(f"A member has at most {MAX_TAGS} tags ({len(names)} given).", field="tags")
    return sorted(names)


# --- duplicates -----------------------------------------------------------------------


def check_duplicates(
    actor, *, national_id: str | None, phone: str | None, email: str | None, exclude_id: int | None = None
) -> None:
    """Refuse a second member with the same national ID, phone or email.

    Within the actor's scope the message names the existing member so staff can
    open their record; outside it, it only says one exists.
    """
    checks = (
        ("national_id", Member.national_id, national_id, "ID number"),
        ("phone", Member.phone, phone, "phone number"),
        ("email", Member.email, email, "email address"),
    )
    for field, column, value, label in checks:
        if value is None:
            continue
        stmt = select(Member).where(column == value)
        if exclude_id is not None:
            stmt = stmt.where(Member.id != exclude_id)
        existing = db.session.scalars(stmt.limit(1)).first()
        if existing is not None:
            raise duplicate_error(actor, existing, field, label)


# --- create, update, status -----------------------------------------------------------


def _unit_in_scope(actor, unit_id: int, permission: str) -> Unit:
    return unit_choice(actor, unit_id, permission, refusal="You may not add or move members there.")


def _tags(names: list[str]) -> list[Tag]:
    if not names:
        return []
    existing = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    tags = []
    for name in names:
        tag = existing.get(name)
        if tag is None:
            tag = Tag(name=name)
            db.session.add(tag)
        tags.append(tag)
    return tags


def format_membership_number(sequence: int) -> str:
    """A membership number: the organisation's prefix plus the sequence, zero-padded to 7 digits."""
    return f"{current_app.config['MEMBER_NUMBER_PREFIX']}{sequence:07d}"


def next_membership_numbers(count: int = 1) -> list[str]:
    """Fresh membership numbers (``format_membership_number`` of the next values of the counter)."""
    first = allocate("membership_number", count)
    return [format_membership_number(n) for n in range(first, first + count)]


def snapshot(member: Member) -> dict[str, Any]:
    """The member's editable fields as plain values, for audit diffs."""
    values = {key: getattr(member, key) for key in EDITABLE_FIELDS if key != "tags"}
    values["tags"] = [t.name for t in member.tags]
    values["status"] = member.status
    return values


def create_member(actor, data: dict[str, Any]) -> Member:
    """Register a new member (pending unless an initial status is given)."""
    values = clean(data)
    status = (data.get("status") or "pending").strip().lower()
    check_transition(None, status)
    unit = _unit_in_scope(actor, values["unit_id"], "members.create")
    check_duplicates(actor, national_id=values["national_id"], phone=values["phone"], email=values["email"])
    tag_names = values.pop("tags", [])
    member = Member(**values, status=status, membership_number=next_membership_numbers()[0])
    member.surname_key = fold(member.last_name)
    member.tags = _tags(tag_names)
    member.created_by_id = member.updated_by_id = getattr(actor, "id", None)
    db.session.add(member)
    db.session.flush()
    db.session.add(
        MemberStatusChange(member=member, from_status=None, to_status=status,
                           reason=data.get("status_reason") or "Registered", actor_id=getattr(actor, "id", None))
    )
    db.session.flush()
    audit.record(actor, "member.create", member, summary=f"Registered {member.full_name} in {unit.name}",
                 changes=audit.diff({}, snapshot(member)))
    return member


def update_member(actor, member: Member, data: dict[str, Any]) -> Member:
    """Change a member's details; moving them needs rights over both units."""
    authorize(actor, "members.update", member, message="You may not change members here.")
    if member.is_deleted:
        raise ServiceError("This member has been deleted; restore them first.", status=409)
    data = dict(data)
    if "status" in data:
        new_status = str(data.pop("status") or "").strip().lower()
        reason = data.pop("status_reason", "") or ""
        if new_status and new_status != member.status:
            change_status(actor, member, new_status, reason)
    data.pop("status_reason", None)
    values = clean(data, partial=True)
    if "unit_id" in values and values["unit_id"] != member.unit_id:
        _unit_in_scope(actor, values["unit_id"], "members.update")
    check_duplicates(
        actor,
        national_id=values.get("national_id", None) if "national_id" in values else None,
        phone=values.get("phone") if "phone" in values else None,
        email=values.get("email") if "email" in values else None,
        exclude_id=member.id,
    )
    before = snapshot(member)
    tag_names = values.pop("tags", None)
    for key, value in values.items():
        setattr(member, key, value)
    if tag_names is not None:
        member.tags = _tags(tag_names)
    member.surname_key = fold(member.last_name)
    member.first_name_key = fold(member.first_name)
    member.updated_by_id = getattr(actor, "id", None)
    db.session.flush()
    changes = audit.diff(before, snapshot(member))
    if changes:
        audit.record(actor, "member.update", member, summary=f"Updated {member.full_name}", changes=changes)
    return member


def change_status(actor, member: Member, new_status: str, reason: str) -> MemberStatusChange:
    """Move a member to another status, if the lifecycle allows it; the reason is required."""
    authorize(actor, "members.update", member, message="You may not change members here.")
    new_status = (new_status or "").strip().lower()
    check_transition(member.status, new_status)
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason for the status change.", field="reason")
    old = member.status
    member.status = new_status
    member.updated_by_id = getattr(actor, "id", None)
    change = MemberStatusChange(member=member, from_status=old, to_status=new_status, reason=reason,
                                actor_id=getattr(actor, "id", None))
    db.session.add(change)
    db.session.flush()
    audit.record(actor, "member.status", member, summary=f"{member.full_name}: {old} -> {new_status} ({reason})",
                 changes={"status": {"before": old, "after": new_status}, "reason": reason})
    from app.services.cards import (
        follow_member_status,  # the card follows its member (issue #4)
    )

    follow_member_status(actor, member, old, new_status, reason)
    from app.services import referrals  # the referral that brought them in follows too (issue 13)

    referrals.follow_member_status(member, old, new_status)
    return change


def delete_member(actor, member: Member) -> None:
    """Soft delete: the member disappears from lists and the API but stays on record."""
    authorize(actor, "members.delete", member, message="You may not delete members here.")
    if member.is_deleted:
        return
    member.deleted_at = utcnow()
    member.deleted_by_id = getattr(actor, "id", None)
    db.session.flush()
    audit.record(actor, "member.delete", member, summary=f"Deleted {member.full_name}")
    from app.services import referrals

    referrals.on_member_deleted(member, actor=actor)


def restore_member(actor, member: Member) -> None:
    """Bring back a soft-deleted member."""
    authorize(actor, "members.delete", member, message="You may not restore members here.")
    if not member.is_deleted:
        return
    member.deleted_at = None
    member.deleted_by_id = None
    db.session.flush()
    audit.record(actor, "member.restore", member, summary=f"Restored {member.full_name}")


# --- figures (dashboard, reports) -----------------------------------------------------
# Aggregates over live members in the actor's scope: GROUP BY queries through the
# scoping helper, never loading member rows.


def _live_in_scope(stmt, actor):
    from app.security import scoped

    return scoped(stmt.where(Member.deleted_at.is_(None)), actor, "members.read", Member)


def count_by_status(actor) -> dict[str, int]:
    """Live members per status (every status present, zero when none) within the actor's scope."""
    stmt = _live_in_scope(select(Member.status, func.count()).select_from(Member).group_by(Member.status), actor)
    counts = {status: int(n) for status, n in db.session.execute(stmt)}
    return {status: counts.get(status, 0) for status in MEMBER_STATUSES}


def count_by_unit(actor, units: list[Unit]) -> dict[int, int]:
    """Live members in the subtree of each of ``units`` (by unit id), within the actor's scope.

    One GROUP BY unit_id over the members table, then the per-unit counts are
    rolled up to the requested units through the materialised paths (the tree
    is small next to the registry).
    """
    totals = {unit.id: 0 for unit in units}
    if not totals:
        return totals
    stmt = _live_in_scope(select(Member.unit_id, func.count()).select_from(Member).group_by(Member.unit_id), actor)
    per_unit = {unit_id: int(n) for unit_id, n in db.session.execute(stmt)}
    if not per_unit:
        return totals
    paths = dict(db.session.execute(select(Unit.id, Unit.path).where(Unit.id.in_(list(per_unit)))).all())
    for unit_id, n in per_unit.items():
        for ancestor in (int(p) for p in paths.get(unit_id, "").strip("/").split("/") if p):
            if ancestor in totals:
                totals[ancestor] += n
    return totals


def joins_by_month(actor, months: int = 12, today: date | None = None) -> list[tuple[date, int]]:
    """Live members who joined in each of the last ``months`` calendar months (oldest first)."""
    today = today or date.today()
    firsts: list[date] = []
    year, month = today.year, today.month
    for _ in range(months):
        firsts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    firsts.reverse()
    # Grouping by day keeps the query portable and lets it walk the joined_on index
    # in order; the (at most 366) days are folded into months here.
    stmt = _live_in_scope(
        select(Member.joined_on, func.count())
        .select_from(Member)
        .where(Member.joined_on >= firsts[0])
        .group_by(Member.joined_on),
        actor,
    )
    counts: dict[tuple[int, int], int] = {}
    for joined_on, n in db.session.execute(stmt):
        key = (joined_on.year, joined_on.month)
        counts[key] = counts.get(key, 0) + int(n)
    return [(first, counts.get((first.year, first.month), 0)) for first in firsts]


# --- paging the registry --------------------------------------------------------------

MERGE_MAX_UNITS = 200


def live_member_page_ids(unit_ids: list[int], offset: int, limit: int) -> list[int] | None:
    """Ids of one page of live members of ``unit_ids``, newest first, or None to use the plain query.

    ``unit_id IN (...) ORDER BY id DESC OFFSET n`` walks the primary key
    backwards and reads every row it skips. Here each unit is read from the
    partial index ix_members_live_unit_id (unit_id, id), already in id order,
    and PostgreSQL merges the streams (Merge Append over index-only scans), so
    a deep page skips index entries instead of table rows; a single unit or a
    very large subtree gains nothing there and gets None. SQLite merges row by
    row, so there the narrow index ix_members_live_id_unit_id is walked newest
    first instead (half the time of its default plan on deep pages). The plan
    for each database is ``app.database.newest_ids_page``.
    """
    return newest_ids_page(Member.unit_id, unit_ids, offset, limit, where=Member.deleted_at.is_(None),
                           sqlite_index="ix_members_live_id_unit_id", merge_max=MERGE_MAX_UNITS)


# --- rules shared with the bulk writes (members_bulk) ---------------------------------


def check_transition(old: str | None, new: str) -> None:
    """Refuse a status change the lifecycle (TRANSITIONS) does not allow; ``old`` None is a new member."""
    if old is None:
        if new not in INITIAL_STATUSES:
            raise ServiceError("A new member starts as pending or active.", field="status")
        return
    if new not in MEMBER_STATUSES:
        raise ServiceError(f"Unknown status '{new}'.", field="status")
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (final)"
        raise ServiceError(f"A {old} member cannot become {new}. Allowed: {allowed}.", field="status", status=409)


def duplicate_error(actor, existing: Member, field: str, label: str) -> DuplicateError:
    """A second member would share ``existing``'s value: named only to those who may see them."""
    visible = actor is None or can(actor, "members.read", existing.unit)
    if visible:
        deleted = " (deleted; it can be restored)" if existing.is_deleted else ""
        message = (f"A member with this {label} already exists: "
                   f"{existing.full_name} ({existing.membership_number}){deleted}.")
    else:
        message = f"A member with this {label} already exists."
    return DuplicateError(message, field=field, existing_id=existing.id if visible else None)
