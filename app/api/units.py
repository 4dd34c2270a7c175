"""The geography tree, as far as the caller may see members in it.

A unit's visibility follows members.read: the part of the tree a coordinator
works in (plus its ancestors, for context, in the tree view), and nothing of
other wards.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select

from app import models
from app.api.context import actor, bp
from app.api.schema import Count, Out, OutId, Timestamp, UnitRef
from app.api.spec import operation
from app.extensions import db
from app.security import load_for, scope_unit_ids
from app.services import geo


class UnitNode(Out):
    id: OutId
    name: str
    code: str
    level: str = Field(description="Level name, e.g. ward.")
    parent_id: OutId | None
    children: list[UnitNode]


class UnitTree(Out):
    items: list[UnitNode]


class Unit(Out):
    id: OutId
    name: str
    code: str
    level: str = Field(description="Level name, e.g. ward.")
    depth: Count = Field(description="0 for the top level.")
    parent_id: OutId | None
    ancestors: list[UnitRef] = Field(description="From the top down.")
    children: list[UnitRef]
    created_at: Timestamp


@bp.get("/units")
@operation("units", permission="members.read",
           responses={200: (UnitTree, "The part of the tree where you may read members (with its ancestors).")})
def list_units():
    """The geography tree

    The tree covering your members.read scope, as nested nodes.
    """
    return UnitTree(items=geo.tree(scope_unit_ids(actor(), "members.read")))


@bp.get("/units/<pk:unit_id>")
@operation("units", responses={200: (Unit, "The unit.")}, errors=(403, 404))
def get_unit(unit_id: int):
    """Read a unit"""
    unit = load_for(actor(), models.Unit, unit_id, "members.read")
    ancestor_ids = [i for i in unit.ancestor_ids if i != unit.id]
    ancestors = db.session.scalars(select(models.Unit).where(models.Unit.id.in_(ancestor_ids))).all() \
        if ancestor_ids else []
    by_id = {u.id: u for u in ancestors}
    return Unit(id=unit.id, name=unit.name, code=unit.code, level=unit.level_name, depth=unit.level,
                parent_id=unit.parent_id, ancestors=[UnitRef.model_validate(by_id[i]) for i in ancestor_ids if i in by_id],
                children=[UnitRef.model_validate(c) for c in unit.children], created_at=unit.created_at)
