"""The geography tree: paths, levels, moves and deletes."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Unit
from app.security import subtree_unit_ids
from app.services import geo
from app.services.errors import Forbidden, NotFound, ServiceError


def test_paths_and_levels(ctx, tree):
    w1, c1, d1, p1 = tree["w1"], tree["c1"], tree["d1"], tree["p1"]
    assert w1.path == f"/{p1.id}/{d1.id}/{c1.id}/{w1.id}/"
    assert (p1.level_name, d1.level_name, c1.level_name, w1.level_name) == (
        "province", "district", "constituency", "ward")
    assert set(subtree_unit_ids(d1)) == {d1.id, c1.id, w1.id, tree["w2"].id}


def test_code_unique_within_parent_only(ctx, tree, make_unit):
    with pytest.raises(ServiceError, match="already has the code W1") as caught:
        geo.create_unit(None, "Again", "w1", tree["c1"])
    assert caught.value.field == "code"
    other = geo.create_unit(None, "Lunte Ward 2", "W1", tree["c2"])
    assert other.code == "W1"


def test_no_unit_below_the_lowest_level(ctx, tree):
    with pytest.raises(ServiceError, match="lowest level"):
        geo.create_unit(None, "Village", "V1", tree["w1"])


def test_move_rewrites_the_whole_subtree(ctx, tree, make_member):
    member = make_member(tree["w1"])
    geo.move_unit(None, tree["c1"], tree["d3"])
    db.session.expire_all()
    c1, w1, d3 = (db.session.get(Unit, tree[k].id) for k in ("c1", "w1", "d3"))
    assert c1.parent_id == d3.id
    assert c1.path == f"{d3.path}{c1.id}/"
    assert w1.path == f"{d3.path}{c1.id}/{w1.id}/"
    assert w1.level == 3
    assert member.unit_id == w1.id
    assert w1.id in subtree_unit_ids(db.session.get(Unit, tree["p2"].id))
    assert w1.id not in subtree_unit_ids(db.session.get(Unit, tree["p1"].id))


def test_move_refuses_cycles_and_depth(ctx, tree):
    with pytest.raises(ServiceError, match="under itself"):
        geo.move_unit(None, tree["d1"], tree["c1"])
    with pytest.raises(ServiceError, match="lowest level"):
        geo.move_unit(None, tree["c1"], tree["c2"])  # a constituency under a constituency


def test_move_to_top_level_shifts_levels(ctx, tree):
    geo.move_unit(None, tree["d2"], tree["p1"])  # same parent: nothing changes
    assert tree["d2"].path == f"/{tree['p1'].id}/{tree['d2'].id}/"
    geo.move_unit(None, tree["d2"], None)
    db.session.expire_all()
    d2, w3 = db.session.get(Unit, tree["d2"].id), db.session.get(Unit, tree["w3"].id)
    assert (d2.path, d2.level, d2.level_name) == (f"/{d2.id}/", 0, "province")
    assert (w3.level, w3.level_name) == (2, "constituency")


def test_delete_only_empty_units(ctx, tree, make_member, staff):
    with pytest.raises(ServiceError, match="still has units under it"):
        geo.delete_unit(None, tree["c2"])
    make_member(tree["w3"])
    with pytest.raises(ServiceError, match="still has 1 member"):
        geo.delete_unit(None, tree["w3"])
    with pytest.raises(ServiceError, match="Staff roles are still assigned"):
        geo.delete_unit(None, tree["w1"])
    geo.delete_unit(None, tree["w2"])
    assert db.session.get(Unit, tree["w2"].id) is None


def test_rename(ctx, tree, staff):
    geo.update_unit(staff["super_admin"], tree["w2"], "New Name", "w2b")
    assert (tree["w2"].name, tree["w2"].code) == ("New Name", "W2B")
    with pytest.raises(Forbidden, match="may not change"):
        geo.update_unit(staff["admin"], tree["w2"], "Other", "W2B")
    with pytest.raises(NotFound):
        geo.update_unit(staff["coordinator"], tree["w2"], "Other", "W2B")
    assert tree["w2"].name == "New Name"


def test_tree_limited_to_scope_keeps_ancestors(ctx, tree):
    roots = geo.tree([tree["w1"].id])
    assert [r["code"] for r in roots] == ["P1"]
    assert roots[0]["children"][0]["children"][0]["children"] == [
        {"id": tree["w1"].id, "name": "Lukashya Ward 1", "code": "W1", "level": "ward",
         "parent_id": tree["c1"].id, "children": []}]
    assert db.session.scalar(select(Unit).where(Unit.code == "P2")) is not None
