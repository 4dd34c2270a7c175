"""The scoping helper: who sees what, at which unit."""

from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Member, User
from app.models.base import utcnow
from app.security import can, has_console_access, has_permission, scope_unit_ids, scoped
from app.services import rbac


def _visible(user, permission="members.read"):
    return {m.last_name for m in db.session.scalars(scoped(select(Member), user, permission))}


def test_roles_cover_their_subtree(ctx, tree, staff, make_member, make_user):
    for ward in ("w1", "w2", "w3", "w4"):
        make_member(tree[ward], last_name=f"In{ward}")
    assert _visible(staff["super_admin"]) == {"Inw1", "Inw2", "Inw3", "Inw4"}
    assert _visible(staff["admin"]) == {"Inw1", "Inw2", "Inw3", "Inw4"}
    assert _visible(staff["coordinator"]) == {"Inw1"}
    assert _visible(staff["member"]) == set()
    province_admin = make_user("p1admin@test.org", "admin", tree["p1"])
    assert _visible(province_admin) == {"Inw1", "Inw2", "Inw3"}
    count = db.session.scalar(scoped(select(func.count()).select_from(Member), staff["coordinator"],
                                     "members.read", Member))
    assert count == 1


def test_permission_must_match(ctx, tree, staff):
    coordinator = staff["coordinator"]
    assert can(coordinator, "members.update", tree["w1"])
    assert not can(coordinator, "members.update", tree["w3"])
    assert not can(coordinator, "members.delete", tree["w1"])
    assert not can(coordinator, "members.read")  # not everywhere
    assert can(staff["super_admin"], "anything.at_all")
    assert has_permission(coordinator, "members.create")
    assert not has_permission(coordinator, "reports.read")
    assert scope_unit_ids(coordinator, "members.read") == [tree["w1"].id]
    assert scope_unit_ids(staff["admin"], "members.read") is None
    assert scope_unit_ids(coordinator, "reports.read") == []


def test_console_access_is_for_staff_only(ctx, staff):
    assert has_console_access(staff["coordinator"])
    assert not has_console_access(staff["member"])


def test_expired_and_inactive_grant_nothing(ctx, tree, make_user, make_member):
    make_member(tree["w1"], last_name="Seen")
    temp = make_user("temp@test.org")
    rbac.assign_role(None, temp, rbac.role_by_name("admin"), None, expires_at=utcnow() + timedelta(hours=1))
    assert _visible(temp) == {"Seen"}
    temp.assignments[0].expires_at = utcnow() - timedelta(seconds=1)
    db.session.flush()
    assert _visible(temp) == set()
    off = make_user("off@test.org", "admin")
    off.active = False
    assert _visible(off) == set()


def test_several_assignments_add_up(ctx, tree, make_user, make_member):
    make_member(tree["w1"], last_name="A")
    make_member(tree["w4"], last_name="B")
    make_member(tree["w3"], last_name="C")
    user = make_user("two@test.org", "ward_coordinator", tree["w1"])
    rbac.assign_role(None, user, rbac.role_by_name("ward_coordinator"), tree["p2"])
    assert _visible(user) == {"A", "B"}


def test_audit_and_users_are_scoped_too(ctx, tree, staff, make_member, make_user):
    member = make_member(tree["w3"])
    entries = db.session.scalars(scoped(select(AuditEntry), staff["admin"], "reports.read")).all()
    assert any(e.object_id == str(member.id) for e in entries)
    p2_admin = make_user("p2@test.org", "admin", tree["p2"])
    entries = db.session.scalars(scoped(select(AuditEntry), p2_admin, "reports.read")).all()
    assert not any(e.object_id == str(member.id) for e in entries)
    users = {u.email for u in db.session.scalars(scoped(select(User), staff["coordinator"], "members.read"))}
    assert users == {"coord@test.org"}


def test_assigning_roles_is_limited_to_what_you_hold(ctx, tree, make_user):
    import pytest

    from app.services.errors import ServiceError

    p1_super = make_user("p1super@test.org")
    role = rbac.create_role(None, "p1_manager", "", ["users.update", "members.read"])
    rbac.assign_role(None, p1_super, role, tree["p1"])
    target = make_user("target@test.org")
    with pytest.raises(ServiceError, match="You cannot grant .*, which you do not hold there"):
        rbac.assign_role(p1_super, target, rbac.role_by_name("ward_coordinator"), tree["w1"])
    with pytest.raises(ServiceError, match="outside your area") as err:
        rbac.assign_role(p1_super, target, role, tree["p2"])
    assert (err.value.status, err.value.field) == (422, "unit_id")
    with pytest.raises(ServiceError, match="may not assign roles there") as err:
        rbac.assign_role(p1_super, target, role, None)  # everywhere: visible idea, not theirs to give
    assert err.value.status == 403
    assignment = rbac.assign_role(p1_super, target, role, tree["w1"])
    assert assignment.assigned_by_id == p1_super.id


def test_super_admin_keeps_every_permission(ctx, staff):
    import pytest

    from app.services.errors import ServiceError

    role = rbac.role_by_name("super_admin")
    with pytest.raises(ServiceError, match="always keeps every permission"):
        rbac.update_role(staff["super_admin"], role, permissions=["members.read"])
    assert [p.name for p in role.permissions] == ["*"]
    rbac.update_role(staff["super_admin"], role, description="Runs everything")
    assert role.description == "Runs everything"
