"""Roles, permissions and users' roles over the API."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.extensions import db
from app.models import Role, RoleAssignment
from app.services import rbac
from tests.api.conftest import assert_error


def role_id(name: str) -> int:
    return db.session.scalar(select(Role.id).where(Role.name == name))


# --- permissions and roles ------------------------------------------------------------


def test_permissions_catalogue(as_super):
    response = as_super.get("/permissions")

    assert response.status_code == 200
    items = response.get_json()["items"]
    names = [p["name"] for p in items]
    assert "members.read" in names and "roles.update" in names and "*" in names
    assert {"name": "members.read", "resource": "members", "action": "read", "description": ""} in items


def test_admin_and_coordinator_cannot_read_roles(as_admin, as_coord):
    for client in (as_admin, as_coord):
        body = assert_error(client.get("/permissions"), 403)
        assert body["details"] == {"permission": "roles.read"}
        assert_error(client.get("/roles"), 403)
        assert_error(client.get(f"/roles/{role_id('admin')}"), 403)
        assert_error(client.get(f"/roles/{role_id('admin')}/permissions"), 403)
        assert_error(client.post("/roles", json={"name": "auditor"}), 403)
        assert_error(client.put(f"/roles/{role_id('admin')}", json={"description": "x"}), 403)
        assert_error(client.put(f"/roles/{role_id('admin')}/permissions", json={"permissions": ["*"]}), 403)
        assert_error(client.delete(f"/roles/{role_id('member')}"), 403)


def test_list_and_read_roles(as_super):
    listing = as_super.get("/roles").get_json()["items"]
    by_name = {r["name"]: r for r in listing}

    assert {"super_admin", "admin", "ward_coordinator", "member"} <= set(by_name)
    admin = by_name["admin"]
    assert admin["is_system"] is True
    assert "members.delete" in admin["permissions"] and "roles.read" not in admin["permissions"]
    assert as_super.get(f"/roles/{admin['id']}").get_json() == admin
    assert as_super.get(f"/roles/{admin['id']}/permissions").get_json() == {
        "role_id": admin["id"], "role": "admin", "permissions": admin["permissions"]}
    assert_error(as_super.get("/roles/999999"), 404)
    assert_error(as_super.get("/roles/999999/permissions"), 404)


def test_create_update_and_delete_a_role(as_super):
    created = as_super.post("/roles", json={"name": "auditor", "description": "Reads things",
                                            "permissions": ["members.read", "reports.read"]})
    assert created.status_code == 201
    role = created.get_json()
    assert created.headers["Location"] == f"/api/v1/roles/{role['id']}"
    assert role["name"] == "auditor" and role["is_system"] is False
    assert role["permissions"] == ["members.read", "reports.read"]

    updated = as_super.put(f"/roles/{role['id']}", json={"description": "Reads more", "name": "auditor"})
    assert updated.status_code == 200
    assert updated.get_json()["description"] == "Reads more"
    assert updated.get_json()["permissions"] == ["members.read", "reports.read"]

    replaced = as_super.put(f"/roles/{role['id']}/permissions", json={"permissions": ["cards.read"]})
    assert replaced.get_json() == {"role_id": role["id"], "role": "auditor", "permissions": ["cards.read"]}
    assert as_super.get(f"/roles/{role['id']}").get_json()["permissions"] == ["cards.read"]

    assert as_super.delete(f"/roles/{role['id']}").status_code == 204
    assert_error(as_super.get(f"/roles/{role['id']}"), 404)


def test_role_validation(as_super):
    assert_error(as_super.post("/roles", json={"name": "Bad Name"}), 422, "name")
    assert_error(as_super.post("/roles", json={}), 422, "name")
    assert_error(as_super.post("/roles", json={"name": "admin"}), 409, "name")
    assert_error(as_super.post("/roles", json={"name": "ok_role", "permissions": ["members.fly"]}), 422,
                 "permissions")
    assert_error(as_super.post("/roles", json={"name": "ok_role", "permissions": "members.read"}), 400,
                 "permissions")
    assert_error(as_super.post("/roles", json={"name": "ok_role", "colour": "red"}), 422, "colour")
    admin_id = role_id("admin")
    assert_error(as_super.put(f"/roles/{admin_id}", json={"name": "boss"}), 422, "name")
    assert_error(as_super.put(f"/roles/{admin_id}/permissions", json={}), 422, "permissions")
    assert_error(as_super.put(f"/roles/{admin_id}/permissions", json={"permissions": ["nope.nope"]}), 422,
                 "permissions")
    assert_error(as_super.put(f"/roles/{admin_id}/permissions", json={"permissions": [1]}), 400, "permissions")
    assert_error(as_super.put(f"/roles/{admin_id}/permissions", data="[]",
                              headers={"Content-Type": "application/json"}), 400)


def test_system_roles_and_roles_in_use_cannot_be_deleted(as_super, make_user):
    body = assert_error(as_super.delete(f"/roles/{role_id('admin')}"), 409)
    assert "system role" in body["error"]

    custom = as_super.post("/roles", json={"name": "helper", "permissions": ["events.read"]}).get_json()
    make_user("helper@test.org", "helper")
    assert "assigned" in assert_error(as_super.delete(f"/roles/{custom['id']}"), 409)["error"]


def test_changed_permissions_take_effect_on_the_next_request(as_super, as_coord):
    coordinator = role_id("ward_coordinator")
    assert as_coord.get("/members").status_code == 200

    as_super.put(f"/roles/{coordinator}/permissions", json={"permissions": ["events.read"]})

    assert_error(as_coord.get("/members"), 403)


# --- users' roles and permissions -----------------------------------------------------


def test_effective_permissions_of_the_coordinator_cover_w1(as_super, staff, tree):
    response = as_super.get(f"/users/{staff['coordinator'].id}/permissions")

    assert response.status_code == 200
    body = response.get_json()
    assert body["user_id"] == staff["coordinator"].id
    rows = {row["permission"]: row for row in body["items"]}
    assert set(rows) == {"members.create", "members.read", "members.update", "members.export", "events.create",
                         "events.read", "events.update", "referrals.read", "cards.read", "payments.read",
                         "payments.create"}
    w1 = {"id": tree["w1"].id, "name": "Lukashya Ward 1", "code": "W1"}
    assert rows["members.read"] == {"permission": "members.read", "scope": "units", "units": [w1], "hidden": 0}


def test_users_may_read_their_own_roles_and_permissions(as_coord, as_member, staff, tree):
    own = as_coord.get(f"/users/{staff['coordinator'].id}/permissions")
    assert own.status_code == 200
    assert {"permission": "members.read", "scope": "units", "hidden": 0,
            "units": [{"id": tree["w1"].id, "name": "Lukashya Ward 1", "code": "W1"}]} in own.get_json()["items"]

    roles = as_member.get(f"/users/{staff['member'].id}/roles").get_json()
    assert [a["role"] for a in roles["items"]] == ["member"]
    assert roles["items"][0]["unit_id"] is None


def test_other_users_need_users_read(as_coord, as_admin, staff):
    for client in (as_coord, as_admin):
        body = assert_error(client.get(f"/users/{staff['super_admin'].id}/permissions"), 403)
        assert body["details"] == {"permission": "users.read"}
        assert_error(client.get(f"/users/{staff['member'].id}/roles"), 403)


def test_user_roles_listing(as_super, staff, tree):
    response = as_super.get(f"/users/{staff['coordinator'].id}/roles")

    assert response.status_code == 200
    [assignment] = response.get_json()["items"]
    assert assignment["role"] == "ward_coordinator"
    assert assignment["role_id"] == role_id("ward_coordinator")
    assert assignment["unit_id"] == tree["w1"].id
    assert assignment["assigned_by"] is None and assignment["expires_at"] is None
    datetime.fromisoformat(assignment["assigned_at"])
    assert_error(as_super.get("/users/999999/roles"), 404)
    assert_error(as_super.get("/users/999999/permissions"), 404)


def test_assign_and_remove_a_role(as_super, staff, tree, make_user):
    user = make_user("new@test.org")
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)

    response = as_super.post(f"/users/{user.id}/roles", json={"role": "ward_coordinator", "unit_id": tree["w2"].id,
                                                              "expires_at": expires.isoformat()})

    assert response.status_code == 201
    assignment = response.get_json()
    assert assignment["role"] == "ward_coordinator" and assignment["unit_id"] == tree["w2"].id
    assert assignment["assigned_by"] == {"id": staff["super_admin"].id, "email": "super@test.org"}
    assert datetime.fromisoformat(assignment["expires_at"]) == expires
    perms = as_super.get(f"/users/{user.id}/permissions").get_json()["items"]
    assert {"permission": "members.read", "scope": "units", "hidden": 0,
            "units": [{"id": tree["w2"].id, "name": "Lukashya Ward 2", "code": "W2"}]} in perms

    by_id = as_super.post(f"/users/{user.id}/roles", json={"role_id": role_id("member"), "unit_id": None})
    assert by_id.status_code == 201 and by_id.get_json()["unit_id"] is None

    assert as_super.delete(f"/users/{user.id}/roles/{assignment['id']}").status_code == 204
    remaining = as_super.get(f"/users/{user.id}/roles").get_json()["items"]
    assert [a["role"] for a in remaining] == ["member"]
    assert_error(as_super.delete(f"/users/{user.id}/roles/{assignment['id']}"), 404)


def test_assignment_validation(as_super, staff, tree, make_user):
    user = make_user("new@test.org")
    path = f"/users/{user.id}/roles"

    assert_error(as_super.post(path, json={}), 422, "role")
    assert_error(as_super.post(path, json={"role": "emperor"}), 422, "role")
    assert_error(as_super.post(path, json={"role_id": 999999}), 422, "role_id")
    assert_error(as_super.post(path, json={"role_id": "admin"}), 400, "role_id")
    assert_error(as_super.post(path, json={"role": "admin", "unit_id": 999999}), 422, "unit_id")
    assert_error(as_super.post(path, json={"role": "admin", "expires_at": "next tuesday"}), 422, "expires_at")
    assert_error(as_super.post(path, json={"role": "admin", "expires_at": "2001-01-01T00:00:00Z"}), 422,
                 "expires_at")
    assert_error(as_super.post(path, json={"role": "admin", "colour": "red"}), 422, "colour")
    assert_error(as_super.post(f"/users/{staff['coordinator'].id}/roles",
                               json={"role": "ward_coordinator", "unit_id": tree["w1"].id}), 409, "role_id")


def test_assignment_belongs_to_the_user_in_the_url(as_super, staff):
    other = db.session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == staff["admin"].id))

    assert_error(as_super.delete(f"/users/{staff['coordinator'].id}/roles/{other.id}"), 404)


def test_unit_scoped_user_manager_stays_in_their_area(api, staff, tree, make_user, make_member):
    """A users.* role at constituency C1 sees only users there and cannot assign outside it."""
    rbac.create_role(None, "user_manager", permissions=["users.read", "users.update", "members.read",
                                                        "members.update"])
    make_user("manager@test.org", "user_manager", tree["c1"])
    inside = make_user("inside@test.org", member=make_member(tree["w2"]))
    outside = make_user("outside@test.org", member=make_member(tree["w3"]))
    manager = api.login("manager@test.org")

    assert manager.get(f"/users/{inside.id}/roles").status_code == 200
    assert manager.get(f"/users/{staff['coordinator'].id}/permissions").status_code == 200  # role at W1
    assert_error(manager.get(f"/users/{outside.id}/roles"), 404)
    assert_error(manager.post(f"/users/{outside.id}/roles", json={"role": "ward_coordinator",
                                                                  "unit_id": tree["w2"].id}), 404)
    # Cannot hand out permissions they do not hold (a coordinator has more), nor work outside C1.
    body = assert_error(manager.post(f"/users/{inside.id}/roles", json={"role": "ward_coordinator",
                                                                        "unit_id": tree["w2"].id}), 403)
    assert "which you do not hold there" in body["error"]
    assert_error(manager.post(f"/users/{inside.id}/roles", json={"role": "user_manager",
                                                                 "unit_id": tree["w3"].id}), 422, "unit_id")
    assert_error(manager.post(f"/users/{inside.id}/roles", json={"role": "user_manager", "unit_id": None}), 403)
    created = manager.post(f"/users/{inside.id}/roles", json={"role": "user_manager", "unit_id": tree["w2"].id})
    assert created.status_code == 201
    # Taking a role away needs what giving it needs: the coordinator's W1 role carries more than they hold.
    coord_assignment = db.session.scalar(select(RoleAssignment.id).where(
        RoleAssignment.user_id == staff["coordinator"].id))
    body = assert_error(manager.delete(f"/users/{staff['coordinator'].id}/roles/{coord_assignment}"), 403)
    assert "which you do not hold there" in body["error"]
    assert manager.delete(f"/users/{inside.id}/roles/{created.get_json()['id']}").status_code == 204


def test_coordinator_cannot_change_anyones_roles(as_coord, staff, tree):
    body = assert_error(as_coord.post(f"/users/{staff['coordinator'].id}/roles",
                                      json={"role": "admin", "unit_id": tree["w1"].id}), 403)
    assert body["details"] == {"permission": "users.update"}
    own = db.session.scalar(select(RoleAssignment.id).where(RoleAssignment.user_id == staff["coordinator"].id))
    assert_error(as_coord.delete(f"/users/{staff['coordinator'].id}/roles/{own}"), 403)
