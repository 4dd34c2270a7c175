"""The geography tree: creating, renaming, moving and deleting units.

Paths are materialised ("/1/5/17/"); a move rewrites the paths and levels of
the whole moved subtree in one statement each, so subtree queries stay right.
Members point at their unit by id and so move with it untouched.
"""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import String, func, literal, select, update

from app.extensions import db
from app.models import AuditEntry, Member, RoleAssignment, Unit
from app.security import authorize, can, check_unit_choice
from app.services import audit
from app.services.errors import ServiceError
from app.services.validation import FieldErrors

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def _check_name_code(name: str, code: str) -> tuple[str, str]:
    """A unit's name and code, both checked before either is refused."""
    name = (name or "").strip()
    code = (code or "").strip().upper()
    errors = FieldErrors()
    if not name:
        errors.add("name", "Give the unit a name.")
    elif len(name) > 120:
        errors.add("name", "The name is too long (120 characters at most).")
    if not CODE_RE.match(code):
        errors.add("code", "The code must be 1-40 letters, digits, '-', '_' or '.'.")
    errors.raise_if_any()
    return name, code


def _check_code_free(parent_id: int | None, code: str, exclude_id: int | None = None) -> None:
    stmt = select(Unit.id).where(Unit.code == code)
    stmt = stmt.where(Unit.parent_id.is_(None) if parent_id is None else Unit.parent_id == parent_id)
    if exclude_id is not None:
        stmt = stmt.where(Unit.id != exclude_id)
    if db.session.scalar(stmt) is not None:
        raise ServiceError(f"Another unit here already has the code {code}.", field="code", status=409)


def _check_depth(parent: Unit | None, subtree_height: int = 0) -> int:
    levels = current_app.config["UNIT_LEVELS"]
    level = 0 if parent is None else parent.level + 1
    if level + subtree_height >= len(levels):
        raise ServiceError(
            f"A {levels[-1]} is the lowest level; units cannot go below it.", field="parent"
        )
    return level


def create_unit(actor, name: str, code: str, parent: Unit | None = None) -> Unit:
    """Add a unit under ``parent`` (or at the top). Needs units.create over the parent."""
    check_unit_choice(actor, parent, "units.create", field="parent", refusal="You may not add units here.")
    name, code = _check_name_code(name, code)
    level = _check_depth(parent)
    _check_code_free(parent.id if parent else None, code)
    unit = Unit(name=name, code=code, parent=parent, level=level, path="")
    db.session.add(unit)
    db.session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    db.session.flush()
    if actor is not None:
        audit.record(actor, "unit.create", unit, summary=f"Created {unit.level_name} {unit.name}")
    return unit


def update_unit(actor, unit: Unit, name: str, code: str) -> Unit:
    """Rename a unit or change its code."""
    authorize(actor, "units.update", unit, message="You may not change this unit.")
    name, code = _check_name_code(name, code)
    _check_code_free(unit.parent_id, code, exclude_id=unit.id)
    before = {"name": unit.name, "code": unit.code}
    unit.name, unit.code = name, code
    db.session.flush()
    changes = audit.diff(before, {"name": name, "code": code})
    if changes and actor is not None:
        audit.record(actor, "unit.update", unit, summary=f"Updated {unit.name}", changes=changes)
    return unit


def subtree_height(unit: Unit) -> int:
    deepest = db.session.scalar(select(func.max(Unit.level)).where(Unit.path.startswith(unit.path)))
    return (deepest or unit.level) - unit.level


def move_unit(actor, unit: Unit, new_parent: Unit | None) -> Unit:
    """Move a unit (and its subtree) under another parent, keeping paths and levels right."""
    authorize(actor, "units.update", unit, message="You may not move this unit.")
    if actor is not None and not can(actor, "units.update", new_parent):
        raise ServiceError("You may not move this unit there.", field="parent", status=403)
    if new_parent is not None and new_parent.path.startswith(unit.path):
        raise ServiceError("A unit cannot be moved under itself or its own descendants.", field="parent")
    if (new_parent.id if new_parent else None) == unit.parent_id:
        return unit
    new_level = _check_depth(new_parent, subtree_height(unit))
    _check_code_free(new_parent.id if new_parent else None, unit.code, exclude_id=unit.id)
    old_path, old_parent = unit.path, unit.parent
    new_path = f"{new_parent.path if new_parent else '/'}{unit.id}/"
    delta = new_level - unit.level
    db.session.execute(
        update(Unit)
        .where(Unit.path.startswith(old_path))
        .values(
            path=literal(new_path, String).concat(func.substr(Unit.path, len(old_path) + 1)),
            level=Unit.level + delta,
        )
        .execution_options(synchronize_session=False)
    )
    unit.parent_id = new_parent.id if new_parent else None
    db.session.flush()
    db.session.expire_all()
    if actor is not None:
        audit.record(
            actor,
            "unit.move",
            unit,
            summary=f"Moved {unit.name}",
            changes={"parent": {"before": str(old_parent) if old_parent else None,
                                "after": str(new_parent) if new_parent else None}},
        )
    return unit


def delete_unit(actor, unit: Unit) -> None:
    """Delete an empty unit; units with children, members or role assignments stay."""
    authorize(actor, "units.delete", unit, message="You may not delete this unit.")
    if db.session.scalar(select(func.count()).select_from(Unit).where(Unit.parent_id == unit.id)):
        raise ServiceError(f"{unit.name} still has units under it; move or delete them first.", status=409)
    members = db.session.scalar(select(func.count()).select_from(Member).where(Member.unit_id == unit.id))
    if members:
        raise ServiceError(f"{unit.name} still has {members} member(s); move them first.", status=409)
    if db.session.scalar(select(func.count()).select_from(RoleAssignment).where(RoleAssignment.unit_id == unit.id)):
        raise ServiceError(f"Staff roles are still assigned at {unit.name}; remove them first.", status=409)
    if actor is not None:
        audit.record(actor, "unit.delete", unit, summary=f"Deleted {unit.name} ({unit.code})", unit_id=unit.parent_id)
    # The log outlives the unit: its entries move up to the parent, so the same
    # people still see them (and the foreign key lets the unit go).
    db.session.execute(
        update(AuditEntry)
        .where(AuditEntry.unit_id == unit.id)
        .values(unit_id=unit.parent_id)
    )
    db.session.delete(unit)
    db.session.flush()


def find_by_code(code: str) -> Unit | None:
    """The unit with this code, when the code is unique across the tree."""
    rows = db.session.scalars(select(Unit).where(Unit.code == code.strip().upper())).all()
    return rows[0] if len(rows) == 1 else None


def tree(unit_ids: list[int] | None = None) -> list[dict]:
    """The tree (or the part of it covering ``unit_ids`` and their ancestors) as nested dicts."""
    units = db.session.scalars(select(Unit).order_by(Unit.level, Unit.name)).all()
    if unit_ids is not None:
        wanted = set(unit_ids)
        keep = set(wanted)
        for u in units:
            if u.id in wanted:
                keep.update(u.ancestor_ids)
        units = [u for u in units if u.id in keep]
    nodes = {
        u.id: {"id": u.id, "name": u.name, "code": u.code, "level": u.level_name,
               "parent_id": u.parent_id, "children": []}
        for u in units
    }
    roots = []
    for u in units:
        node = nodes[u.id]
        if u.parent_id in nodes:
            nodes[u.parent_id]["children"].append(node)
        else:
            roots.append(node)
    return roots


def member_counts(unit_ids: list[int] | None = None) -> dict[int, int]:
    """Live (not deleted) members per unit, counted where they are attached, in one GROUP BY.

    ``unit_ids`` limits the count to those units (None: every unit). Subtree
    totals are sums over the tree, left to the caller that already holds it.
    """
    if unit_ids is not None and not unit_ids:
        return {}
    stmt = (
        select(Member.unit_id, func.count(Member.id))
        .where(Member.deleted_at.is_(None))
        .group_by(Member.unit_id)
    )
    if unit_ids is not None:
        stmt = stmt.where(Member.unit_id.in_(unit_ids))
    return {unit_id: count for unit_id, count in db.session.execute(stmt)}
