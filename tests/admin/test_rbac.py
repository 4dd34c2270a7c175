"""Roles and staff users in the console ("Access"), through HTTP with CSRF on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, LoginFailure, Role, RoleAssignment, User
from app.models.base import utcnow
from app.services import rbac
from tests.conftest import PASSWORD, csrf_token_from, login

ROLES = "/admin/roles/"
USERS = "/admin/users/"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _post(client, url, data, page_url=None):
    page = client.get(page_url or url)
    assert page.status_code == 200, page.status_code
    return client.post(url, data={**data, "csrf_token": csrf_token_from(_text(page))})


@pytest.fixture()
def as_super(client, staff):
    login(client, "super@test.org")
    db.session.commit()
    return client


@pytest.fixture()
def province_admin(tree, make_user):
    """An admin of province P1 who may also manage staff there (but holds no roles.* or units.*)."""
    role = rbac.create_role(None, "province_admin", "Runs a province, staff included", [
        *rbac.SYSTEM_ROLES["admin"][1], "users.read", "users.create", "users.update",
    ])
    user = make_user("p1admin@test.org")
    rbac.assign_role(None, user, role, tree["p1"])
    db.session.commit()
    return user


def _role(name: str) -> Role | None:
    db.session.expire_all()
    return db.session.scalar(select(Role).where(Role.name == name))


def _user(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


# --- roles ----------------------------------------------------------------------------


def test_roles_list_shows_permission_counts(as_super):
    html = _text(as_super.get(ROLES))
    for name in ("super_admin", "admin", "ward_coordinator", "member"):
        assert name in html
    admin = _role("admin")
    row = html.split(f'id="role-{admin.id}"', 1)[1].split("</tr>", 1)[0]
    assert f">{len(admin.permissions)}<" in row.replace(" ", "").replace("\n", "")
    assert "New role" in html


def test_create_role_with_ticked_permissions(as_super):
    form = _text(as_super.get("/admin/roles/new"))
    assert 'name="permissions" value="members.read"' in form
    assert "Members" in form or "members" in form  # grouped by resource
    response = _post(as_super, "/admin/roles/new", {
        "name": "district_officer", "description": "Looks after a district",
        "permissions": ["members.read", "events.read", "reports.read"],
    })
    assert response.status_code == 302
    role = _role("district_officer")
    assert sorted(p.name for p in role.permissions) == ["events.read", "members.read", "reports.read"]
    assert not role.is_system
    assert "Created role district_officer with 3 permission(s)." in _text(as_super.get(response.headers["Location"]))


def test_create_role_refusal_keeps_input(as_super):
    response = _post(as_super, "/admin/roles/new", {
        "name": "admin", "description": "Clash", "permissions": ["members.read", "cards.read"],
    })
    assert response.status_code == 409
    html = _text(response)
    assert "A role called admin already exists." in html
    assert 'value="Clash"' in html
    assert 'value="cards.read" checked' in html


def test_edit_role_permissions(as_super):
    rbac.create_role(None, "helper", "", ["members.read"])
    db.session.commit()
    role = _role("helper")
    url = f"/admin/roles/{role.id}/edit"
    assert 'value="members.read" checked' in _text(as_super.get(url))
    response = _post(as_super, url, {"description": "Helps", "permissions": ["events.read", "events.update"]})
    assert response.status_code == 302
    role = _role("helper")
    assert [p.name for p in role.permissions] == ["events.read", "events.update"] and role.description == "Helps"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "role.update"))
    assert entry.changes["permissions"]["after"] == ["events.read", "events.update"]
    # Unticking everything is allowed too.
    _post(as_super, url, {"description": "Helps"})
    assert _role("helper").permissions == []


def test_system_role_permissions_are_editable(as_super):
    role = _role("ward_coordinator")
    wanted = [p.name for p in role.permissions] + ["reports.read"]
    response = _post(as_super, f"/admin/roles/{role.id}/edit", {"description": role.description, "permissions": wanted})
    assert response.status_code == 302
    assert "reports.read" in [p.name for p in _role("ward_coordinator").permissions]


def test_delete_custom_role_and_refuse_system_role(as_super):
    rbac.create_role(None, "temporary", "", ["members.read"])
    db.session.commit()
    role = _role("temporary")
    url = f"/admin/roles/{role.id}/delete"
    assert "Delete role temporary?" in _text(as_super.get(url))
    response = _post(as_super, url, {})
    assert response.status_code == 302
    assert _role("temporary") is None

    admin = _role("admin")
    response = _post(as_super, f"/admin/roles/{admin.id}/delete", {})
    assert response.status_code == 409
    assert "admin is a system role and cannot be deleted." in _text(response)
    assert _role("admin") is not None


def test_roles_need_roles_permissions(client, staff, province_admin):
    login(client, "admin@test.org")  # the seed admin holds no roles.*
    assert client.get(ROLES).status_code == 403
    assert "/admin/roles/" not in _text(client.get("/admin/"))
    token = csrf_token_from(_text(client.get("/admin/")))
    role = _role("member")
    assert client.post(f"/admin/roles/{role.id}/delete", data={"csrf_token": token}).status_code == 403
    assert client.post("/admin/roles/new", data={"csrf_token": token, "name": "x_role"}).status_code == 403
    assert _role("x_role") is None


def test_role_post_without_csrf_is_refused(as_super):
    response = as_super.post("/admin/roles/new", data={"name": "no_token", "permissions": ["members.read"]})
    assert response.status_code == 400
    assert _role("no_token") is None


# --- staff users ----------------------------------------------------------------------


def test_user_list_shows_roles_and_account_state(as_super, staff):
    staff["coordinator"].last_login_at = utcnow() - timedelta(hours=2)
    db.session.add(LoginFailure(email="admin@test.org", address="10.0.0.9", failures=5, last_failed_at=utcnow(),
                                locked_until=utcnow() + timedelta(minutes=10)))
    staff["member"].active = False
    db.session.commit()
    html = _text(as_super.get(USERS))
    assert "coord@test.org" in html and "ward_coordinator @ Lukashya Ward 1" in html
    assert "super_admin @ everywhere" in html
    assert "deactivated" in html
    assert "UTC" in html
    assert "New user" in html
    assert "coord@test.org" in _text(as_super.get(USERS + "?q=COORD"))
    assert "admin@test.org" not in _text(as_super.get(USERS + "?q=coord"))


def test_create_user(as_super, tree):
    response = _post(as_super, "/admin/users/new", {
        "email": "New.Person@Test.org", "password": "long-enough-password", "role_id": "", "unit_id": "",
    })
    assert response.status_code == 302
    user = _user("new.person@test.org")
    assert user is not None and user.password_hash and user.active
    assert "Created new.person@test.org." in _text(as_super.get(response.headers["Location"]))
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.create")) is not None

    response = _post(as_super, "/admin/users/new", {"email": "short@test.org", "password": "short"})
    assert response.status_code == 422
    html = _text(response)
    assert "A password needs at least 10 characters." in html and 'value="short@test.org"' in html
    response = _post(as_super, "/admin/users/new", {"email": "new.person@test.org", "password": "long-enough-password"})
    assert response.status_code == 409
    assert "already exists" in _text(response)


def test_assign_role_at_unit_and_see_effective_permissions(as_super, staff, tree):
    target = staff["coordinator"]
    role = _role("admin")
    response = _post(as_super, f"/admin/users/{target.id}/assign",
                     {"role_id": role.id, "unit_id": tree["d2"].id, "expires_on": ""},
                     page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 302
    assert db.session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == target.id,
                                                          RoleAssignment.role_id == role.id,
                                                          RoleAssignment.unit_id == tree["d2"].id))
    details = _text(as_super.get(f"/admin/users/{target.id}/"))
    assert "Gave coord@test.org the role admin at Mbala." in details
    page = _text(as_super.get(f"/admin/users/{target.id}/permissions"))
    row = page.split("<code>reports.read</code>", 1)[1].split("</tr>", 1)[0]
    assert "Mbala (D2)" in row
    row = page.split("<code>members.read</code>", 1)[1].split("</tr>", 1)[0]
    assert "Mbala (D2)" in row and "Lukashya Ward 1 (W1)" in row


def test_assign_with_expiry_and_remove(as_super, staff, tree):
    target = staff["member"]
    role = _role("ward_coordinator")
    expiry = (utcnow() + timedelta(days=30)).date()
    response = _post(as_super, f"/admin/users/{target.id}/assign",
                     {"role_id": role.id, "unit_id": tree["w2"].id, "expires_on": expiry.isoformat()},
                     page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 302
    assignment = db.session.scalar(select(RoleAssignment).where(RoleAssignment.user_id == target.id,
                                                                RoleAssignment.role_id == role.id))
    assert assignment.expires_at.date() == expiry

    response = _post(as_super, f"/admin/users/{target.id}/assign",
                     {"role_id": role.id, "unit_id": tree["w3"].id, "expires_on": "2001-01-01"},
                     page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 422
    assert "The expiry must be in the future." in _text(response)

    response = _post(as_super, f"/admin/users/{target.id}/assignments/{assignment.id}/remove", {},
                     page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(RoleAssignment, assignment.id) is None
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "role.unassign")) is not None


def test_province_admin_cannot_assign_outside_province_or_grant_roles_permissions(client, staff, tree,
                                                                                   province_admin, make_user):
    helper = make_user("helper@test.org", "ward_coordinator", tree["w2"])
    db.session.commit()
    login(client, "p1admin@test.org")
    details = f"/admin/users/{helper.id}/"
    page = _text(client.get(details))
    unit_select = page.split('name="unit_id"', 1)[1].split("</select>", 1)[0]
    assert "Northern" in unit_select and "Highlands" not in unit_select
    assert "Everywhere" not in unit_select  # no global option for a province admin

    coordinator = _role("ward_coordinator")
    response = _post(client, f"/admin/users/{helper.id}/assign", {"role_id": coordinator.id, "unit_id": tree["p2"].id},
                     page_url=details)
    assert response.status_code == 422  # outside their area: as if the unit did not exist
    assert "That unit does not exist or is outside your area." in _text(response)

    response = _post(client, f"/admin/users/{helper.id}/assign", {"role_id": coordinator.id, "unit_id": ""},
                     page_url=details)
    assert response.status_code == 403
    assert "You may not assign roles there." in _text(response)

    role_manager = rbac.create_role(None, "role_manager", "", ["roles.read", "roles.update"])
    db.session.commit()
    response = _post(client, f"/admin/users/{helper.id}/assign", {"role_id": role_manager.id, "unit_id": tree["p1"].id},
                     page_url=details)
    assert response.status_code == 403
    assert "You cannot grant roles.read, which you do not hold there." in _text(response)
    db.session.expire_all()
    assert [a.role.name for a in _user("helper@test.org").assignments] == ["ward_coordinator"]

    # Inside the province, with permissions the admin holds: allowed.
    response = _post(client, f"/admin/users/{helper.id}/assign", {"role_id": coordinator.id, "unit_id": tree["w3"].id},
                     page_url=details)
    assert response.status_code == 302


def test_province_admin_sees_only_users_of_their_area(client, staff, tree, province_admin, make_user):
    outsider = make_user("outsider@test.org", "ward_coordinator", tree["w4"])
    db.session.commit()
    login(client, "p1admin@test.org")
    html = _text(client.get(USERS))
    assert "coord@test.org" in html and "p1admin@test.org" in html
    assert "outsider@test.org" not in html and "super@test.org" not in html
    assert client.get(f"/admin/users/{outsider.id}/").status_code == 404
    assert client.get(f"/admin/users/{outsider.id}/permissions").status_code == 404
    assert client.get(f"/admin/users/{staff['super_admin'].id}/").status_code == 404


def test_province_admin_must_give_new_users_a_role_in_their_area(client, staff, tree, province_admin):
    login(client, "p1admin@test.org")
    response = _post(client, "/admin/users/new", {"email": "nobody@test.org", "password": "long-enough-password",
                                                  "role_id": "", "unit_id": tree["w1"].id})
    assert response.status_code == 422
    assert "Give the new user a role in your area" in _text(response)
    coordinator = _role("ward_coordinator")
    response = _post(client, "/admin/users/new", {"email": "wardhelp@test.org", "password": "long-enough-password",
                                                  "role_id": coordinator.id, "unit_id": tree["w2"].id})
    assert response.status_code == 302
    user = _user("wardhelp@test.org")
    assert [(a.role.name, a.unit_id) for a in user.assignments] == [("ward_coordinator", tree["w2"].id)]
    assert client.get(response.headers["Location"]).status_code == 200


def test_deactivate_prevents_login_and_activate_restores_it(as_super, staff):
    target = staff["coordinator"]
    response = _post(as_super, f"/admin/users/{target.id}/active", {"active": "0"}, page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 302
    assert _user("coord@test.org").active is False
    assert "deactivated" in _text(as_super.get(response.headers["Location"]))

    # (One client per test: the test app context shares flask.g, and with it the CSRF token, across clients.)
    refused = login(as_super, "coord@test.org")
    assert refused.status_code == 401
    assert "This account is disabled." in _text(refused)

    login(as_super, "super@test.org")
    response = _post(as_super, f"/admin/users/{target.id}/active", {"active": "1"}, page_url=f"/admin/users/{target.id}/")
    assert _user("coord@test.org").active is True
    assert login(as_super, "coord@test.org").status_code == 302


def test_cannot_deactivate_self_or_a_more_powerful_user(client, as_super, staff, province_admin, make_user):
    me = staff["super_admin"]
    response = _post(as_super, f"/admin/users/{me.id}/active", {"active": "0"}, page_url=f"/admin/users/{me.id}/")
    assert "You cannot deactivate your own account." in _text(as_super.get(response.headers["Location"]))
    assert _user("super@test.org").active

    # A province admin reaching a super admin through a ward assignment still cannot switch them off.
    boss = make_user("boss@test.org", "super_admin")
    rbac.assign_role(None, boss, rbac.role_by_name("ward_coordinator"), staff["coordinator"].assignments[0].unit)
    db.session.commit()
    login(client, "p1admin@test.org")
    response = _post(client, f"/admin/users/{boss.id}/active", {"active": "0"}, page_url=f"/admin/users/{boss.id}/")
    assert response.status_code == 403  # they can see the account, but may not change it
    assert "boss@test.org holds * everywhere, which you do not" in _text(response)
    assert _user("boss@test.org").active


def test_unlock_clears_the_lock(as_super, staff):
    target = staff["coordinator"]
    db.session.add(LoginFailure(email=target.email, address="127.0.0.1", failures=5, last_failed_at=utcnow(),
                                locked_until=utcnow() + timedelta(minutes=15)))
    db.session.commit()
    assert login(as_super, "coord@test.org").status_code == 401
    login(as_super, "super@test.org")
    page = _text(as_super.get(f"/admin/users/{target.id}/"))
    assert "locked from 1 address" in page and "5 from 127.0.0.1" in page and "Unlock" in page
    response = _post(as_super, f"/admin/users/{target.id}/unlock", {}, page_url=f"/admin/users/{target.id}/")
    assert response.status_code == 302
    assert db.session.scalars(select(LoginFailure)).all() == []
    assert "coord@test.org is unlocked" in _text(as_super.get(response.headers["Location"]))
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.unlock"))
    assert entry.unit_id == target.assignments[0].unit_id
    assert login(as_super, "coord@test.org", PASSWORD).status_code == 302


def test_users_pages_need_users_permissions(client, staff):
    login(client, "coord@test.org")
    assert client.get(USERS).status_code == 403
    token = csrf_token_from(_text(client.get("/admin/")))
    target = staff["member"]
    assert client.post(f"/admin/users/{target.id}/active", data={"csrf_token": token, "active": "0"}).status_code == 403
    assert _user("member@test.org").active


def test_user_action_without_csrf_is_refused(as_super, staff):
    target = staff["coordinator"]
    response = as_super.post(f"/admin/users/{target.id}/active", data={"active": "0"})
    assert response.status_code == 400
    assert _user("coord@test.org").active
