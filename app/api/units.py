"""The geography tree, as far as the caller may see members in it.

A unit's visibility follows members.read: the part of the tree a coordinator
works in (plus its ancestors, for context, in the tree view), and nothing of
other wards.
"""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.serialize import unit_json
from app.extensions import db
from app.models import Unit
from app.security import has_permission, load_for, scope_unit_ids
from app.services import geo


def _require_members_read() -> None:
    if not has_permission(actor(), "members.read"):
        raise ApiError(403, "You do not have permission to see the registry's units.",
                       {"permission": "members.read"})


@bp.get("/units")
def list_units():
    """The tree covering the caller's members.read scope, as nested nodes."""
    _require_members_read()
    return jsonify({"items": geo.tree(scope_unit_ids(actor(), "members.read"))})


@bp.get("/units/<pk:unit_id>")
def get_unit(unit_id: int):
    unit = load_for(actor(), Unit, unit_id, "members.read")
    ancestor_ids = [i for i in unit.ancestor_ids if i != unit.id]
    ancestors = db.session.scalars(select(Unit).where(Unit.id.in_(ancestor_ids))).all() if ancestor_ids else []
    by_id = {u.id: u for u in ancestors}
    return jsonify(unit_json(unit, [by_id[i] for i in ancestor_ids if i in by_id]))
