"""The Geography console page, through HTTP with CSRF on: what staff see and what they may change."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Unit
from tests.conftest import csrf_token_from, login

TREE = "/admin/geography/"


@pytest.fixture()
def as_super(client, staff):
    login(client, "super@test.org")
    db.session.commit()  # keep the fixtures when a view rolls back a refused change
    return client


def _post(client, url, data, page_url=None):
    """POST a form with the CSRF token of the page it lives on (the URL itself by default)."""
    page = client.get(page_url or url)
    assert page.status_code == 200, page.status_code
    return client.post(url, data={**data, "csrf_token": csrf_token_from(page.get_data(as_text=True))})


def _text(response) -> str:
    return response.get_data(as_text=True)


def _unit(code: str) -> Unit | None:
    db.session.expire_all()
    return db.session.scalar(select(Unit).where(Unit.code == code))


# --- browsing -------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, staff):
    response = client.get(TREE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_tree_shows_levels_and_member_counts(as_super, tree, make_member):
    for _ in range(3):
        make_member(tree["w1"])
    make_member(tree["w2"])
    deleted = make_member(tree["w4"])
    deleted.deleted_at = deleted.created_at
    db.session.commit()
    html = _text(as_super.get(TREE))
    assert "Geography" in html
    for name in ("Northern", "Kasama", "Lukashya Ward 1", "Highlands", "Luangeni Ward 1"):
        assert name in html
    assert "province" in html and "ward" in html

    def count_for(unit_id):
        block = html.split(f'id="unit-{unit_id}"', 1)[1]
        return int(re.search(r'badge-primary">([\d,]+)<', block).group(1).replace(",", ""))

    assert count_for(tree["w1"].id) == 3
    assert count_for(tree["c1"].id) == 4  # subtree total
    assert count_for(tree["p1"].id) == 4
    assert count_for(tree["w4"].id) == 0  # deleted members do not count
    assert "Add province" in html and "Add district" in html


def test_coordinator_sees_only_their_ward_and_cannot_add(client, staff, tree, make_member):
    make_member(tree["w1"])
    make_member(tree["w2"])
    login(client, "coord@test.org")
    response = client.get(TREE)
    assert response.status_code == 200
    html = _text(response)
    assert "Lukashya Ward 1" in html
    # Ancestors appear greyed out for context, without counts; siblings and other provinces not at all.
    assert "outside your area" in html
    for hidden in ("Lukashya Ward 2", "Lunte Ward 1", "Highlands", "Luangeni"):
        assert hidden not in html
    assert "Add " not in html and "Edit / move" not in html and "Delete" not in html
    assert client.get("/admin/geography/new").status_code == 403
    token = csrf_token_from(html)
    refused = client.post("/admin/geography/new", data={"csrf_token": token, "parent": tree["w1"].id,
                                                        "name": "X", "code": "X"})
    assert refused.status_code == 403
    assert client.get(f"/admin/geography/{tree['w1'].id}/edit").status_code == 403
    assert client.post(f"/admin/geography/{tree['w1'].id}/delete", data={"csrf_token": token}).status_code == 403


def test_member_without_console_access_gets_403(client, staff):
    login(client, "member@test.org")
    assert client.get(TREE).status_code == 403


def test_menu_shows_geography_only_to_those_who_may_browse(client, staff):
    login(client, "coord@test.org")
    html = _text(client.get("/admin/"))
    assert "/admin/geography/" in html
    assert "/admin/audit/" not in html and "/admin/roles/" not in html and "/admin/users/" not in html


# --- adding ---------------------------------------------------------------------------


def test_add_child_and_top_level_units(as_super, tree):
    form = _text(as_super.get(f"/admin/geography/new?parent={tree['c1'].id}"))
    assert f'<option selected value="{tree["c1"].id}"' in form or f'value="{tree["c1"].id}" selected' in form
    response = _post(as_super, "/admin/geography/new",
                     {"parent": tree["c1"].id, "name": "Lukashya Ward 3", "code": "w9"})
    assert response.status_code == 302
    ward = _unit("W9")  # codes are stored in capitals
    assert ward.parent_id == tree["c1"].id and ward.level == 3 and ward.path == f"{tree['c1'].path}{ward.id}/"
    page = _text(as_super.get(response.headers["Location"]))
    assert "Added ward Lukashya Ward 3 (W9)." in page

    response = _post(as_super, "/admin/geography/new", {"parent": "", "name": "Eastern", "code": "P3"})
    assert response.status_code == 302
    province = _unit("P3")
    assert province.parent_id is None and province.level == 0
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.create",
                                                       AuditEntry.object_id == str(province.id)))
    assert entry is not None and entry.actor.email == "super@test.org"


def test_add_refusals_rerender_with_message_and_input(as_super, tree):
    response = _post(as_super, "/admin/geography/new",
                     {"parent": tree["c1"].id, "name": "Duplicate code ward", "code": "W1"})
    assert response.status_code == 409
    html = _text(response)
    assert "Another unit here already has the code W1." in html
    assert 'value="Duplicate code ward"' in html  # nothing lost
    assert "is-invalid" in html

    response = _post(as_super, "/admin/geography/new", {"parent": tree["w1"].id, "name": "Too deep", "code": "TD"})
    assert response.status_code == 422
    assert "A ward is the lowest level; units cannot go below it." in _text(response)
    assert _unit("TD") is None


# --- renaming and moving ---------------------------------------------------------------


def test_rename_and_recode(as_super, tree):
    url = f"/admin/geography/{tree['w2'].id}/edit"
    response = _post(as_super, url, {"name": "Lukashya North", "code": "w2n"})
    assert response.status_code == 302
    unit = _unit("W2N")
    assert unit.name == "Lukashya North"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.update"))
    assert entry.changes["name"] == {"before": "Lukashya Ward 2", "after": "Lukashya North"}

    response = _post(as_super, url, {"name": "Lukashya North", "code": "W1"})
    assert response.status_code == 409
    html = _text(response)
    assert "Another unit here already has the code W1." in html and 'value="Lukashya North"' in html


def test_move_keeps_paths_consistent(as_super, tree):
    response = _post(as_super, f"/admin/geography/{tree['c2'].id}/move", {"parent": tree["d1"].id},
                     page_url=f"/admin/geography/{tree['c2'].id}/edit")
    assert response.status_code == 302
    c2, w3 = _unit("C2"), _unit("W3")
    assert c2.parent_id == tree["d1"].id
    assert c2.path == f"{tree['d1'].path}{c2.id}/" and w3.path == f"{c2.path}{w3.id}/"
    assert "Moved Lunte under Kasama" in _text(as_super.get(response.headers["Location"]))


def test_move_under_own_descendant_is_refused(as_super, tree):
    edit = f"/admin/geography/{tree['d1'].id}/edit"
    form = _text(as_super.get(edit))
    # The unit's own subtree is not offered as a new parent...
    assert f'value="{tree["c1"].id}"' not in form.split("New parent", 1)[1]
    # ...and posting it anyway is refused by the service, with its message next to the field.
    response = _post(as_super, f"/admin/geography/{tree['d1'].id}/move", {"parent": tree["c1"].id}, page_url=edit)
    assert response.status_code == 422
    assert "A unit cannot be moved under itself or its own descendants." in _text(response)
    assert _unit("D1").parent_id == tree["p1"].id


def test_move_too_deep_is_refused(as_super, tree):
    edit = f"/admin/geography/{tree['d2'].id}/edit"
    response = _post(as_super, f"/admin/geography/{tree['d2'].id}/move", {"parent": tree["d1"].id}, page_url=edit)
    assert response.status_code == 422
    assert "A ward is the lowest level" in _text(response)


# --- deleting -------------------------------------------------------------------------


def test_delete_asks_for_confirmation_then_deletes_empty_unit(as_super, tree):
    url = f"/admin/geography/{tree['w3'].id}/delete"
    page = _text(as_super.get(url))
    assert "Delete ward Lunte Ward 1 (W3)?" in page and "Yes, delete" in page
    assert _unit("W3") is not None  # GET changes nothing
    response = _post(as_super, url, {})
    assert response.status_code == 302
    assert _unit("W3") is None
    assert "Deleted ward Lunte Ward 1 (W3)." in _text(as_super.get(response.headers["Location"]))
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.delete")) is not None


def test_unit_created_in_console_can_be_deleted_and_its_log_moves_up(as_super, tree):
    _post(as_super, "/admin/geography/new", {"parent": tree["c2"].id, "name": "Short-lived", "code": "SL"})
    unit = _unit("SL")
    _post(as_super, f"/admin/geography/{unit.id}/edit", {"name": "Short-lived ward", "code": "SL"})
    response = _post(as_super, f"/admin/geography/{unit.id}/delete", {})
    assert response.status_code == 302
    assert _unit("SL") is None
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.object_type == "Unit",
                                                          AuditEntry.object_id == str(unit.id))).all()
    assert {e.action for e in entries} == {"unit.create", "unit.update", "unit.delete"}
    assert {e.unit_id for e in entries} == {tree["c2"].id}  # still visible to whoever sees the parent


def test_delete_unit_with_members_or_children_is_refused(as_super, tree, make_member):
    make_member(tree["w1"])
    db.session.commit()
    response = _post(as_super, f"/admin/geography/{tree['w1'].id}/delete", {})
    assert response.status_code == 409
    assert "Lukashya Ward 1 still has 1 member(s); move them first." in _text(response)
    assert _unit("W1") is not None

    response = _post(as_super, f"/admin/geography/{tree['c1'].id}/delete", {})
    assert response.status_code == 409
    assert "Lukashya still has units under it; move or delete them first." in _text(response)


def test_post_without_csrf_token_is_refused(as_super, tree):
    response = as_super.post(f"/admin/geography/{tree['w3'].id}/delete", data={})
    assert response.status_code == 400
    assert _unit("W3") is not None
    response = as_super.post("/admin/geography/new", data={"parent": "", "name": "No token", "code": "NT"})
    assert response.status_code == 400
    assert _unit("NT") is None


def test_out_of_scope_unit_answers_404(client, tree, make_user):
    make_user("p1units@test.org", "super_admin", tree["p1"])  # everything, but only in P1
    login(client, "p1units@test.org")
    db.session.commit()
    assert client.get(f"/admin/geography/{tree['w1'].id}/edit").status_code == 200
    assert client.get(f"/admin/geography/{tree['w4'].id}/edit").status_code == 404
    assert client.get(f"/admin/geography/{tree['w4'].id}/delete").status_code == 404
    assert client.get("/admin/geography/999999/edit").status_code == 404
    html = _text(client.get(TREE))
    assert "Northern" in html and "Highlands" not in html
    # No top-level option for someone whose power stops at a province.
    assert "Add province" not in html
    response = _post(client, "/admin/geography/new", {"parent": "", "name": "Rogue", "code": "RG"})
    assert response.status_code == 403
    assert "You may not add units here." in _text(response)
