"""The geography tree over the API, limited to where the caller may read members."""

from __future__ import annotations

from tests.api.conftest import assert_error


def codes(nodes: list[dict]) -> list:
    return [(n["code"], codes(n["children"])) if n["children"] else n["code"] for n in nodes]


def test_super_admin_sees_the_whole_tree(as_super, tree):
    body = as_super.get("/units").get_json()

    assert codes(body["items"]) == [
        ("P2", [("D3", [("C3", ["W4"])])]),
        ("P1", [("D1", [("C1", ["W1", "W2"])]), ("D2", [("C2", ["W3"])])]),
    ]
    w4 = body["items"][0]["children"][0]["children"][0]["children"][0]
    assert w4 == {"id": tree["w4"].id, "name": "Luangeni Ward 1", "code": "W4", "level": "ward",
                  "parent_id": tree["c3"].id, "children": []}


def test_coordinator_sees_their_ward_and_its_ancestors_only(as_coord, tree):
    body = as_coord.get("/units").get_json()

    assert codes(body["items"]) == [("P1", [("D1", [("C1", ["W1"])])])]


def test_member_role_cannot_read_units(as_member, tree):
    assert_error(as_member.get("/units"), 403)
    assert_error(as_member.get(f"/units/{tree['w1'].id}"), 403)


def test_unit_detail(as_super, tree):
    response = as_super.get(f"/units/{tree['c1'].id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["code"] == "C1" and body["level"] == "constituency" and body["depth"] == 2
    assert body["parent_id"] == tree["d1"].id
    assert [a["code"] for a in body["ancestors"]] == ["P1", "D1"]
    assert [c["code"] for c in body["children"]] == ["W1", "W2"]
    assert as_super.get(f"/units/{tree['p1'].id}").get_json()["ancestors"] == []


def test_unit_detail_is_scoped(as_coord, tree):
    assert as_coord.get(f"/units/{tree['w1'].id}").get_json()["code"] == "W1"
    for unit in ("w2", "w3", "c1", "p2"):
        assert_error(as_coord.get(f"/units/{tree[unit].id}"), 404)
    assert_error(as_coord.get("/units/999999"), 404)
