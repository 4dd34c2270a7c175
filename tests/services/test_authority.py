"""Every mutating service decides who may do it, called directly with no view in front.

One rule everywhere (``app.security.authorize``): an object outside the
actor's reach raises ``NotFound`` (as if it did not exist), one they can see
but may not change raises ``Forbidden``; either way nothing is written.
Principals: the coordinator of W1; a "reader" who reads the whole of P1 but
coordinates only W1 (read scope wider than write scope); and a coordinator
who also holds the global ``member`` role, as the seed gives every member.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Event, EventRegistration, Member, RoleAssignment
from app.models.base import utcnow
from app.security import authorize, load_for, permits, scoped
from app.services import cards, geo, rbac, users
from app.services import events as ev
from app.services import members as member_service
from app.services.errors import Forbidden, NotFound, ServiceError

HOUR = timedelta(hours=1)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture()
def reader(tree, make_user):
    """Reads members, events and cards across province P1; writes only in ward W1."""
    role = rbac.create_role(None, "p1_reader", permissions=["members.read", "events.read", "cards.read",
                                                            "users.read"])
    user = make_user("reader@test.org", "ward_coordinator", tree["w1"])
    rbac.assign_role(None, user, role, tree["p1"])
    return user


@pytest.fixture()
def coordinator_member(tree, make_user, make_member):
    """A W1 coordinator who is also a member of W1 and holds the global member role."""
    member = make_member(tree["w1"], first_name="Grace", last_name="Coordinator")
    user = make_user("coordmember@test.org", "ward_coordinator", tree["w1"], member=member)
    rbac.assign_role(None, user, rbac.role_by_name("member"), None)
    return user


def _event(unit, **fields) -> Event:
    now = utcnow()
    data = {"title": "Meeting", "start_at": now - HOUR, "end_at": now + 3 * HOUR, "unit_id": unit.id,
            "status": "upcoming"}
    data.update(fields)
    return ev.create_event(None, data)


def _audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0


# --- members -------------------------------------------------------------------------------


MEMBER_CALLS = {
    "update": lambda actor, m: member_service.update_member(actor, m, {"first_name": "Changed"}),
    "status": lambda actor, m: member_service.change_status(actor, m, "suspended", "testing"),
    "delete": lambda actor, m: member_service.delete_member(actor, m),
    "photo": lambda actor, m: member_service.set_photo(actor, m, b"not even an image"),
}


@pytest.mark.parametrize("call", sorted(MEMBER_CALLS))
def test_member_services_hide_members_of_other_wards(ctx, tree, staff, make_member, call):
    member = make_member(tree["w4"], first_name="Outside")
    before = _audit_count()
    with pytest.raises(NotFound):
        MEMBER_CALLS[call](staff["coordinator"], member)
    db.session.refresh(member)
    assert (member.first_name, member.status, member.deleted_at) == ("Outside", "active", None)
    assert _audit_count() == before


@pytest.mark.parametrize("call", sorted(MEMBER_CALLS))
def test_member_services_refuse_a_visible_member_without_the_right(ctx, tree, reader, make_member, call):
    member = make_member(tree["w2"], first_name="Visible")  # in P1 (readable), not in W1 (writable)
    assert load_for(reader, Member, member.id, "members.read") is member
    with pytest.raises(Forbidden):
        MEMBER_CALLS[call](reader, member)
    db.session.refresh(member)
    assert (member.first_name, member.status, member.deleted_at) == ("Visible", "active", None)


def test_coordinator_may_not_delete_or_restore_even_in_their_ward(ctx, tree, staff, make_member):
    member = make_member(tree["w1"])
    with pytest.raises(Forbidden, match="may not delete members"):
        member_service.delete_member(staff["coordinator"], member)
    member_service.delete_member(None, member)
    with pytest.raises(Forbidden, match="may not restore"):
        member_service.restore_member(staff["coordinator"], member)
    assert member.deleted_at is not None


def test_moving_a_member_out_of_scope_is_refused(ctx, tree, staff, make_member):
    member = make_member(tree["w1"])
    with pytest.raises(ServiceError, match="outside your area") as err:
        member_service.update_member(staff["coordinator"], member, {"unit_id": tree["w4"].id})
    assert err.value.field == "unit_id"
    assert member.unit_id == tree["w1"].id


def test_a_member_reaches_only_their_own_record(ctx, tree, make_user, make_member):
    mine, other = make_member(tree["w1"]), make_member(tree["w1"])
    user = make_user("self@test.org", "member", member=mine)
    assert permits(user, "profile.update_own", mine)
    with pytest.raises(Forbidden):  # their own record, but editing it as staff would: no
        member_service.update_member(user, mine, {"first_name": "Me"})
    with pytest.raises(Forbidden):  # they read no member records at all: a refusal reveals nothing
        member_service.update_member(user, other, {"first_name": "Them"})
    assert (mine.first_name, other.first_name) != ("Me", "Them")


def test_bad_ids_are_not_found(ctx, staff):
    for bad in ("abc", "-1", "0", "4.0", "1e9", str(2**70), "", None, "١٢"):
        with pytest.raises(NotFound):
            load_for(staff["super_admin"], Member, bad, "members.read")


# --- events ----------------------------------------------------------------------------------


EVENT_CALLS = {
    "update": lambda actor, e, m: ev.update_event(actor, e, {"title": "Changed"}),
    "delete": lambda actor, e, m: ev.delete_event(actor, e),
    "register": lambda actor, e, m: ev.register(actor, e, m),
    "attendance": lambda actor, e, m: ev.set_attendance(actor, e, m, "attended"),
    "check_in": lambda actor, e, m: ev.check_in(actor, e, member_id=m.id),
    "attach": lambda actor, e, m: ev.add_attachment(actor, e, "a.pdf", PDF),
}


@pytest.mark.parametrize("call", sorted(EVENT_CALLS))
def test_event_services_hide_events_of_other_areas(ctx, tree, staff, make_member, call):
    event = _event(tree["w4"], title="Elsewhere")
    member = make_member(tree["w4"])
    with pytest.raises(NotFound):
        EVENT_CALLS[call](staff["coordinator"], event, member)
    assert db.session.get(Event, event.id).title == "Elsewhere"
    assert db.session.scalar(select(func.count()).select_from(EventRegistration)) == 0


@pytest.mark.parametrize("call", sorted(EVENT_CALLS))
def test_event_services_refuse_a_visible_event_without_the_right(ctx, tree, reader, make_member, call):
    event = _event(tree["w2"], title="Readable")
    member = make_member(tree["w2"])
    assert ev.load_event(reader, event.id) is event
    with pytest.raises(Forbidden):
        EVENT_CALLS[call](reader, event, member)
    assert db.session.get(Event, event.id).title == "Readable"
    assert db.session.scalar(select(func.count()).select_from(EventRegistration)) == 0


def test_staff_cannot_register_a_member_they_do_not_reach(ctx, tree, staff, make_member):
    event = _event(tree["p1"])  # a province event: W1's coordinator may manage? no: it lies above W1
    with pytest.raises(NotFound):
        ev.register(staff["coordinator"], event, make_member(tree["w1"]))
    ward_event = _event(tree["w1"])
    with pytest.raises(ServiceError, match="No such member in your area"):
        ev.register(staff["coordinator"], ward_event, make_member(tree["w4"]))


def test_members_register_only_themselves(ctx, tree, make_user, make_member):
    mine, other = make_member(tree["w1"]), make_member(tree["w1"])
    user = make_user("selfreg@test.org", "member", member=mine)
    province_event = _event(tree["p1"])
    reg, created = ev.register(user, province_event, mine, source="self")
    assert created and reg.status == "registered"
    with pytest.raises(Forbidden, match="only register yourself"):
        ev.register(user, province_event, other, source="self")
    with pytest.raises(Forbidden):
        ev.register(user, province_event, other)  # as staff: they are not
    ev.cancel_registration(user, reg)
    assert reg.status == "cancelled"


def test_members_cannot_see_drafts_or_events_of_other_areas(ctx, tree, make_user, make_member):
    user = make_user("seer@test.org", "member", member=make_member(tree["w1"]))
    open_above = _event(tree["p1"])
    draft_here = _event(tree["w1"], status="draft")
    other_ward = _event(tree["w2"])
    assert ev.load_event(user, open_above.id) is open_above
    for hidden in (draft_here, other_ward):
        with pytest.raises(NotFound):
            ev.load_event(user, hidden.id)
    assert list(db.session.scalars(ev.visible_events(user))) == [open_above]


def test_a_coordinator_who_is_a_member_sees_events_as_staff(ctx, tree, coordinator_member):
    mine = _event(tree["w1"], status="draft")
    other_draft = _event(tree["w2"], status="draft")
    other_published = _event(tree["w4"])
    assert [e.id for e in db.session.scalars(ev.visible_events(coordinator_member))] == [mine.id]
    for hidden in (other_draft, other_published):
        with pytest.raises(NotFound):
            ev.load_event(coordinator_member, hidden.id)
    attachment = ev.add_attachment(None, other_draft, "agenda.pdf", PDF)
    assert not permits(coordinator_member, "events.read", attachment)


def test_a_coordinator_who_is_a_member_registers_themselves_above_their_ward(ctx, tree, coordinator_member):
    province_event = _event(tree["p1"])
    reg, created = ev.register(coordinator_member, province_event, coordinator_member.member, source="self")
    assert created and reg.member_id == coordinator_member.member.id
    with pytest.raises(NotFound):  # but it is not theirs to manage: staff see only their staff scope
        ev.update_event(coordinator_member, province_event, {"title": "Mine now"})
    assert province_event.title == "Meeting"


def test_marking_attended_respects_capacity(ctx, tree, staff, make_member):
    event = _event(tree["w1"], capacity=2, walk_ins_allowed=True)
    people = [make_member(tree["w1"]) for _ in range(3)]
    for person in people[:2]:
        ev.register(staff["coordinator"], event, person)
    with pytest.raises(ServiceError, match="full"):
        ev.set_attendance(staff["coordinator"], event, people[2], "attended")
    for person in people[:2]:
        ev.set_attendance(staff["coordinator"], event, person, "attended")
    attended = db.session.scalar(select(func.count()).select_from(EventRegistration).where(
        EventRegistration.event_id == event.id, EventRegistration.status == "attended"))
    assert attended == 2


def test_marking_attended_follows_the_door_for_walk_ins(ctx, tree, staff, make_member):
    closed = _event(tree["w1"], registration_required=True, walk_ins_allowed=False)
    with pytest.raises(ServiceError, match="walk-ins are not admitted"):
        ev.set_attendance(staff["coordinator"], closed, make_member(tree["w1"]), "attended")
    later = _event(tree["w1"], start_at=utcnow() + 48 * HOUR, end_at=utcnow() + 50 * HOUR)
    with pytest.raises(ServiceError, match="Check-in opens"):
        ev.set_attendance(staff["coordinator"], later, make_member(tree["w1"]), "attended")


# --- cards, units, users ----------------------------------------------------------------------


def test_card_services_hide_and_refuse(ctx, tree, staff, reader, make_member):
    outside = cards.issue_card(None, make_member(tree["w4"]))
    visible = cards.issue_card(None, make_member(tree["w2"]))
    for call in (cards.suspend_card, cards.revoke_card, cards.reissue_card):
        with pytest.raises(NotFound):
            call(staff["coordinator"], outside, "x")
        with pytest.raises(Forbidden):
            call(reader, visible, "x")
    with pytest.raises(NotFound):
        cards.renew_card(staff["coordinator"], outside)
    assert (outside.status, visible.status) == ("active", "active")


def test_unit_services_hide_and_refuse(ctx, tree, staff):
    with pytest.raises(NotFound):
        geo.update_unit(staff["coordinator"], tree["w4"], "X", "XX")
    with pytest.raises(Forbidden):
        geo.update_unit(staff["coordinator"], tree["w1"], "X", "XX")  # visible, but no units.update
    with pytest.raises(NotFound):
        geo.delete_unit(staff["coordinator"], tree["w4"])
    assert tree["w4"].name == "Luangeni Ward 1"


def test_user_and_role_services_hide_and_refuse(ctx, tree, staff, reader, make_user):
    elsewhere = make_user("elsewhere@test.org", "ward_coordinator", tree["w4"])
    nearby = make_user("nearby@test.org", "ward_coordinator", tree["w2"])
    with pytest.raises(NotFound):  # reads users in P1 only
        users.set_active(reader, elsewhere, False)
    with pytest.raises(NotFound):
        rbac.unassign_role(reader, elsewhere.assignments[0])
    with pytest.raises(Forbidden):  # visible, but reader may not change users
        users.set_active(reader, nearby, False)
    with pytest.raises(Forbidden):  # holds users.read nowhere: nothing to hide, so 403
        users.set_active(staff["coordinator"], elsewhere, False)
    assert elsewhere.active and nearby.active and len(elsewhere.assignments) == 1


def test_role_assignments_are_listed_only_inside_the_viewers_area(ctx, tree, make_user):
    viewer = make_user("viewer@test.org", "super_admin", tree["p1"])
    both = make_user("both@test.org", "ward_coordinator", tree["w1"])
    rbac.assign_role(None, both, rbac.role_by_name("ward_coordinator"), tree["w4"])
    shown, hidden = rbac.visible_assignments(viewer, both)
    assert [a.unit.code for a in shown] == ["W1"] and hidden == 1
    rows = {r["permission"]: r for r in rbac.effective_permissions(both, viewer=viewer)}
    assert [u["code"] for u in rows["members.read"]["units"]] == ["W1"]
    assert rows["members.read"]["hidden"] == 1
    assert "Luangeni" not in repr(rows)


def test_system_actor_may_do_anything(ctx, tree, make_member):
    member = make_member(tree["w4"])
    authorize(None, "members.delete", member)
    member_service.delete_member(None, member)
    assert member.deleted_at is not None
    assert db.session.scalars(scoped(select(Member), None, "members.read")).all()


def test_taking_a_role_away_needs_its_permissions_too(ctx, tree, make_user):
    """Whoever may not give a role may not take it away (the red-team rerun found the gap)."""
    role = rbac.create_role(None, "ward_user_manager", permissions=["users.read", "users.update"])
    manager = make_user("manager@test.org")
    rbac.assign_role(None, manager, role, tree["w1"])
    coordinator = make_user("victim@test.org", "ward_coordinator", tree["w1"])
    with pytest.raises(Forbidden, match="carries .*, which you do not hold there"):
        rbac.unassign_role(manager, coordinator.assignments[0])
    assert len(coordinator.assignments) == 1


def test_the_last_global_super_admin_stays(ctx, staff, make_user):
    only = staff["super_admin"]
    with pytest.raises(ServiceError, match="last account holding super_admin") as err:
        rbac.unassign_role(only, only.assignments[0])
    assert err.value.status == 409 and len(only.assignments) == 1
    second = make_user("second@test.org", "super_admin")
    rbac.unassign_role(second, only.assignments[0])
    assert db.session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == only.id)).all() == []
