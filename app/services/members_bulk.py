"""Many members at once (imports): the bulk twins of create_member, update_member and change_status.

The same rules as the single path in ``services.members`` -- the status
lifecycle (``check_transition``), duplicates (national ID, phone, email, as
``check_duplicates`` words them), the actor's scope, the status history with
its reason, the card following its member (``cards.follow_member_statuses``)
and the audit log -- in a few statements per batch instead of several per
member, so a 100,000-row import keeps its pace. Values arrive as
``members.clean`` returns them: an import cleans row by row, so that it can
report every field's problem with its line. A row that breaks a rule refuses
the whole call; the ``ServiceError``'s ``details["row"]`` is its position.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Integer, Text, bindparam, delete, insert, literal, null, or_, select, update

from app.database import in_values
from app.extensions import db
from app.models import Member, MemberStatusChange, Tag, Unit
from app.models.base import fold, utcnow
from app.models.people import member_tags
from app.security import scope_unit_ids
from app.services import audit
from app.services.errors import DuplicateError, ServiceError
from app.services.members import check_transition, duplicate_error, next_membership_numbers

MEMBERS = Member.__table__
STATUS_CHANGES = MemberStatusChange.__table__
_STORED = ("first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id", "phone", "email",
           "address", "unit_id", "joined_on", "notes")
# check_duplicates' keys, and a former system's membership number kept by an import.
_DUPLICATE_KEYS = (("national_id", "ID number"), ("phone", "phone number"), ("email", "email address"),
                   ("membership_number", "membership number"))


def _at_row(exc: ServiceError, index: int) -> ServiceError:
    exc.details = {**(exc.details if isinstance(exc.details, dict) else {}), "row": index}
    return exc


def _check_units(actor, permission: str, unit_ids: list[int]) -> None:
    """Every unit exists and lies in the actor's scope for ``permission`` (one query per call)."""
    allowed = scope_unit_ids(actor, permission) if actor is not None else None
    known = set(allowed) if allowed is not None else set(
        db.session.scalars(select(Unit.id).where(Unit.id.in_(set(unit_ids)))))
    for index, unit_id in enumerate(unit_ids):
        if unit_id not in known:
            raise _at_row(ServiceError("That unit does not exist or is outside your area.", field="unit_id"), index)


def _check_duplicates_many(actor, rows: list[dict[str, Any]], ids: list[int | None]) -> None:
    """check_duplicates for many rows: the rows against each other, then one query for all keys.

    ``ids`` are the members the rows change (None for new ones); a member keeps its own values.
    """
    wanted: dict[str, dict[Any, int]] = {}
    for field, label in _DUPLICATE_KEYS:
        first = wanted[field] = {}
        for index, row in enumerate(rows):
            value = row.get(field)
            if value is None:
                continue
            if value in first:
                raise _at_row(DuplicateError(f"Another row has the same {label}.", field=field), index)
            first[value] = index
    keys = [(field, label) for field, label in _DUPLICATE_KEYS if wanted[field]]
    if not keys:
        return
    stmt = select(MEMBERS.c.id, *[MEMBERS.c[field] for field, _label in keys]).where(
        or_(*[in_values(MEMBERS.c[field], list(wanted[field])) for field, _label in keys]))
    for found in db.session.execute(stmt):  # one round trip: the indexes are OR'ed by the database
        for field, label in keys:
            index = wanted[field].get(getattr(found, field))
            if index is not None and ids[index] != found.id:
                raise _at_row(duplicate_error(actor, db.session.get(Member, found.id), field, label), index)


def _set_tags_many(tagged: list[tuple[int, list[str]]], *, replace: bool) -> None:
    """Give each member id its tag names (creating missing tags), replacing their tags or not."""
    names = sorted({name for _id, tags in tagged for name in tags})
    tag_table = Tag.__table__
    ids = dict(db.session.execute(select(tag_table.c.name, tag_table.c.id).where(tag_table.c.name.in_(names))).all())
    missing = [n for n in names if n not in ids]
    if missing:
        db.session.execute(insert(tag_table), [{"name": n} for n in missing])
        ids.update(db.session.execute(select(tag_table.c.name, tag_table.c.id)
                                      .where(tag_table.c.name.in_(missing))).all())
    if replace:
        db.session.execute(delete(member_tags).where(member_tags.c.member_id.in_([m for m, _t in tagged])))
    links = [{"member_id": m, "tag_id": ids[name]} for m, tags in tagged for name in set(tags)]
    if links:
        db.session.execute(insert(member_tags), links)


def create_members(actor, rows: list[dict[str, Any]], *, reason: str) -> list[str]:
    """Register many members with create_member's rules; their membership numbers, in order.

    A row holds ``clean``'s values plus ``status`` (pending unless given; a new
    member starts as pending or active), and may hold ``membership_number`` (a
    former system's number, kept) and ``tags``. ``reason`` is each member's
    first status change. Members go in with one executemany (RETURNING would
    cost five times as much on PostgreSQL: they are found again by number;
    the model's defaults fill the search keys); the caller records the batch
    in the audit log (an import's entry counts them).
    """
    if not rows:
        return []
    db.session.flush()
    for index, row in enumerate(rows):
        try:
            check_transition(None, row.get("status") or "pending")
        except ServiceError as exc:
            raise _at_row(exc, index) from None
    _check_units(actor, "members.create", [row["unit_id"] for row in rows])
    _check_duplicates_many(actor, rows, [None] * len(rows))
    needed = sum(1 for row in rows if not row.get("membership_number"))
    fresh = iter(next_membership_numbers(needed) if needed else [])
    actor_id, now, today = getattr(actor, "id", None), utcnow(), date.today()
    params = []
    for row in rows:
        values = {key: row.get(key) for key in _STORED}
        values.update(
            membership_number=row.get("membership_number") or next(fresh),
            status=row.get("status") or "pending", joined_on=row.get("joined_on") or today, created_at=now,
            updated_at=now, created_by_id=actor_id, updated_by_id=actor_id, deleted_at=None, deleted_by_id=None,
        )
        params.append(values)
    db.session.execute(insert(MEMBERS), params)
    numbers = [p["membership_number"] for p in params]
    db.session.execute(insert(STATUS_CHANGES).from_select(
        ["member_id", "from_status", "to_status", "reason", "actor_id", "changed_at"],
        select(MEMBERS.c.id, null(), MEMBERS.c.status, literal(reason, Text()), literal(actor_id, Integer()),
               literal(now, STATUS_CHANGES.c.changed_at.type))
        .where(in_values(MEMBERS.c.membership_number, numbers)),
    ))
    tagged = [(number, row["tags"]) for number, row in zip(numbers, rows) if row.get("tags")]
    if tagged:
        ids = dict(db.session.execute(select(MEMBERS.c.membership_number, MEMBERS.c.id).where(
            in_values(MEMBERS.c.membership_number, [n for n, _t in tagged]))).all())
        _set_tags_many([(ids[n], tags) for n, tags in tagged], replace=False)
    return numbers


def _tags_of(member_ids: list[int]) -> dict[int, list[str]]:
    """The sorted tag names of each of ``member_ids`` (one query)."""
    out: dict[int, list[str]] = {}
    if member_ids:
        tag_table = Tag.__table__
        stmt = (select(member_tags.c.member_id, tag_table.c.name)
                .join(tag_table, tag_table.c.id == member_tags.c.tag_id)
                .where(in_values(member_tags.c.member_id, member_ids)).order_by(tag_table.c.name))
        for member_id, name in db.session.execute(stmt):
            out.setdefault(member_id, []).append(name)
    return out


def update_members(actor, changes: dict[int, dict[str, Any]], *, reason: str, source: str = "") -> None:
    """Change many members with update_member's and change_status's rules.

    ``changes`` maps a member id to the values to set, as ``clean`` returns
    them (``unit_id`` moves the member, ``tags`` replaces their tags), and
    ``status``: one step of the lifecycle, kept in member_status_changes with
    ``reason``, after which the member's card follows as it does after
    change_status (expelled: revoked). Each member gets the single path's audit
    entries (member.status, member.update); ``source`` (a file name) ends their summary.
    """
    if not changes:
        return
    db.session.flush()
    ids = list(changes)
    current = {row.id: row for row in db.session.execute(
        select(MEMBERS.c.id, MEMBERS.c.status, MEMBERS.c.deleted_at, *[MEMBERS.c[k] for k in _STORED])
        .where(in_values(MEMBERS.c.id, ids)))}
    reason = (reason or "").strip()
    scope = scope_unit_ids(actor, "members.update") if actor is not None else None
    updatable = set(scope) if scope is not None else None
    for index, (member_id, values) in enumerate(changes.items()):
        row = current.get(member_id)
        try:
            if row is None or row.deleted_at is not None:
                raise ServiceError("This member has been deleted; restore them first." if row is not None
                                   else "No such member.", status=409 if row is not None else 404)
            if updatable is not None and row.unit_id not in updatable:
                raise ServiceError("That member is outside your area.", status=403)
            if values.get("status") not in (None, row.status):
                check_transition(row.status, values["status"])
                if not reason:
                    raise ServiceError("Give a reason for the status change.", field="reason")
        except ServiceError as exc:
            raise _at_row(exc, index) from None
    _check_units(actor, "members.update",
                 [values.get("unit_id") or current[member_id].unit_id for member_id, values in changes.items()])
    _check_duplicates_many(actor, list(changes.values()), ids)

    actor_id, now, suffix = getattr(actor, "id", None), utcnow(), f" from {source}" if source else ""
    tags_before = _tags_of([m for m, values in changes.items() if "tags" in values])
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    status_rows, entries, tagged, followers = [], [], [], {}
    for member_id, values in changes.items():
        row = current[member_id]
        fields = {k: v for k, v in values.items() if k in _STORED and v != getattr(row, k)}
        before, after = {k: getattr(row, k) for k in fields}, dict(fields)
        if "tags" in values and sorted(values["tags"]) != tags_before.get(member_id, []):
            tagged.append((member_id, values["tags"]))
            before["tags"], after["tags"] = tags_before.get(member_id, []), sorted(values["tags"])
        new_status = values.get("status") if values.get("status") not in (None, row.status) else None
        if not after and new_status is None:
            continue
        stored = {**fields, "updated_at": now, "updated_by_id": actor_id}
        if "last_name" in fields:
            stored["surname_key"] = fold(fields["last_name"])
        if "first_name" in fields:
            stored["first_name_key"] = fold(fields["first_name"])
        if new_status is not None:
            stored["status"] = new_status
        groups.setdefault(tuple(sorted(stored)), []).append({"_id": member_id, **stored})
        name = f"{fields.get('first_name', row.first_name)} {fields.get('last_name', row.last_name)}"
        entry = {"object_type": "Member", "object_id": str(member_id), "unit_id": fields.get("unit_id", row.unit_id)}
        if new_status is not None:
            followers[member_id] = new_status
            status_rows.append({"member_id": member_id, "from_status": row.status, "to_status": new_status,
                                "reason": reason, "actor_id": actor_id, "changed_at": now})
            entries.append({**entry, "action": "member.status",
                            "summary": f"{name}: {row.status} -> {new_status} ({reason})",
                            "changes": {"status": {"before": row.status, "after": new_status}, "reason": reason}})
        if after:
            entries.append({**entry, "action": "member.update", "summary": f"Updated {name}{suffix}",
                            "changes": audit.diff(before, after)})
    for keys, params in groups.items():
        db.session.execute(update(MEMBERS).where(MEMBERS.c.id == bindparam("_id"))
                           .values({k: bindparam(k) for k in keys}), params)
    if status_rows:
        db.session.execute(insert(STATUS_CHANGES), status_rows)
    if tagged:
        _set_tags_many(tagged, replace=True)
    audit.record_many(actor, entries)
    for obj in list(db.session.identity_map.values()):  # copies loaded before these UPDATEs are stale
        if isinstance(obj, Member) and obj.id in changes:
            db.session.expire(obj)
    if followers:
        from app.services import referrals
        from app.services.cards import follow_member_statuses  # the card follows its member

        follow_member_statuses(actor, followers, reason)
        referrals.follow_member_statuses(followers)  # and the referral that brought them in
