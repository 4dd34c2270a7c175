"""Login, identity, permissions and scope: the one place that decides who may do what.

A role is assigned to a user either globally or at a unit; at a unit it covers
that unit's whole subtree. Two questions are answered here and nowhere else:

- *Which rows may this user reach?* ``scoped()`` narrows a SELECT for lists,
  counts, charts, exports and the API.
- *May this user do this to that object?* ``authorize()`` and ``load_for()``,
  called by the services themselves (views, API handlers, CLI commands and
  tasks only call services). Outside the actor's reach answers ``NotFound``
  (as if it did not exist); within reach but without the action, ``Forbidden``.

Self-service is not staff scope. A role made only of member permissions
(``PORTAL_PERMISSIONS``, such as the seeded global ``member`` role) grants
"my own records and what is open to my unit", never a subtree: a coordinator
who is also a member sees no more in the console or the API than their
coordinator role allows. ``actor=None`` is the system itself (migrations,
seeding, operator commands run on the server) and may do anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from flask import g, has_request_context
from sqlalchemy import Select, and_, bindparam, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.database import json_rows
from app.extensions import db
from app.models import AuditEntry, Member, RoleAssignment, Unit, User
from app.models.base import utcnow
from app.models.cards import MembershipCard
from app.models.events import Event, EventAttachment, EventRegistration
from app.models.mail import MailMessage
from app.models.rbac import Permission, Role, role_permissions
from app.models.dues import Payment
from app.models.referrals import PointsEntry, Referral
from app.models.requests import ErasureRequest, MemberChangeRequest
from app.services.errors import Forbidden, NotFound, ServiceError
from app.services.inputs import parse_id

# Permissions a member needs for self-service; holding only these gives no console access.
PORTAL_PERMISSIONS = frozenset(
    {
        "events.read",
        "events.register",
        "referrals.create",
        "referrals.read_own",
        "cards.read_own",
        "profile.read_own",
        "profile.update_own",
    }
)
# Self-service permissions that only ever concern the actor's own records; a staff
# user who is also a member keeps them (to register themselves for an event).
# ``events.read`` is left out: for staff it is a staff permission, judged by unit.
SELF_ONLY = PORTAL_PERMISSIONS - {"events.read"}


@dataclass(frozen=True)
class Grant:
    """One permission a user holds: everywhere (unit_path None) or in a subtree.

    ``self_service`` grants come from roles made only of member permissions;
    they reach the user's own records, never a unit's.
    """

    permission: str
    unit_path: str | None
    self_service: bool = False


def grants_of(user_id: Any) -> Any:
    """The live grants of user ``user_id`` (a column or a parameter) as one JSON value, for a SELECT list.

    ``[[assignment_id, unit_path, role_name, resource, action], ...]`` (NULL
    when the user has none), for the assignments not expired at the bind
    parameter ``now``. One value rather than a row per permission: the API's
    token lookup reads the token, its user and their grants as a single row
    (``services.auth``), and ``remember_grants`` turns the value into grants.
    Roles without permissions still give an entry (resource NULL): their names
    count for Flask-Principal's role needs.
    """
    return (
        select(json_rows(RoleAssignment.id, Unit.path, Role.name, Permission.resource, Permission.action))
        .select_from(RoleAssignment)
        .join(Role, Role.id == RoleAssignment.role_id)
        .outerjoin(Unit, Unit.id == RoleAssignment.unit_id)
        .outerjoin(role_permissions, role_permissions.c.role_id == Role.id)
        .outerjoin(Permission, Permission.id == role_permissions.c.permission_id)
        .where(RoleAssignment.user_id == user_id,
               or_(RoleAssignment.expires_at.is_(None),
                   RoleAssignment.expires_at > bindparam("now", type_=RoleAssignment.expires_at.type)))
        .scalar_subquery()
    )


# Every request of a logged-in user runs this; built once.
_GRANTS = select(grants_of(bindparam("user_id")))


def _name(resource: str, action: str) -> str:
    return "*" if resource == "*" else f"{resource}.{action}"


def grants_for(user: Any) -> list[Grant]:
    """All live grants of a user, computed once per request (one query, with the role names)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return []
    cache = g.setdefault("_muster_grants", {}) if has_request_context() else {}
    if user.id in cache:
        return cache[user.id]
    # Core on the session's connection (after a flush, so pending assignments count): the ORM's
    # per-query work was a third of this query's cost, and every API request runs it.
    db.session.flush()
    return remember_grants(user, db.session.connection().execute(
        _GRANTS, {"user_id": user.id, "now": utcnow()}).scalar())


def remember_grants(user: Any, entries: list[list[Any]] | None) -> list[Grant]:
    """The user's grants from ``grants_of``'s value; kept for the rest of the request."""
    entries = entries or []
    by_assignment: dict[int, set[str]] = {}
    for assignment_id, _path, _role, resource, action in entries:
        if resource is not None:
            by_assignment.setdefault(assignment_id, set()).add(_name(resource, action))
    grants = {
        Grant(_name(resource, action), path, by_assignment[assignment_id] <= PORTAL_PERMISSIONS)
        for assignment_id, path, _role, resource, action in entries
        if resource is not None
    }
    result = sorted(grants, key=lambda gr: (gr.permission, gr.unit_path or "", gr.self_service))
    if has_request_context():
        g.setdefault("_muster_grants", {})[user.id] = result
        g.setdefault("_muster_roles", {})[user.id] = sorted({role for _a, _p, role, _r, _ac in entries})
    return result


def role_names_for(user: Any) -> list[str]:
    """Names of the user's live roles (for Flask-Principal's RoleNeeds), from the grants query."""
    grants_for(user)
    roles = g.get("_muster_roles", {}) if has_request_context() else {}
    if user is not None and user.id in roles:
        return roles[user.id]
    now = utcnow()
    return sorted({a.role.name for a in getattr(user, "assignments", []) if a.expires_at is None or a.expires_at > now})


def forget_grants() -> None:
    """Drop the per-request cache after roles or assignments change."""
    if has_request_context():
        g.pop("_muster_grants", None)
        g.pop("_muster_roles", None)
        g.pop("_muster_scope", None)


def _matches(granted: str, wanted: str) -> bool:
    if granted == "*" or granted == wanted:
        return True
    resource, _, action = granted.partition(".")
    return action == "*" and wanted.startswith(resource + ".")


def has_permission(user: Any, permission: str) -> bool:
    """True when the user holds the permission somewhere, staff or self-service (menus, buttons)."""
    return any(_matches(gr.permission, permission) for gr in grants_for(user))


def has_console_access(user: Any) -> bool:
    """Staff are users holding any grant beyond member self-service."""
    return any(not gr.self_service for gr in grants_for(user))


def scope_paths(user: Any, permission: str) -> list[str] | None:
    """Unit paths where the user holds the permission as staff; None means everywhere."""
    paths: list[str] = []
    for gr in grants_for(user):
        if not gr.self_service and _matches(gr.permission, permission):
            if gr.unit_path is None:
                return None
            paths.append(gr.unit_path)
    # Drop paths already covered by an ancestor path.
    paths.sort(key=len)
    kept: list[str] = []
    for path in paths:
        if not any(path.startswith(k) for k in kept):
            kept.append(path)
    return kept


def scope_unit_ids(user: Any, permission: str) -> list[int] | None:
    """Ids of every unit in the user's staff scope for a permission; None means everywhere.

    The geography is small next to the member registry, so resolving the
    subtree to ids once per request lets the database use plain
    ``unit_id IN (...)`` index probes on the large tables.
    """
    paths = scope_paths(user, permission)
    if paths is None:
        return None
    if not paths:
        return []
    cache = g.setdefault("_muster_scope", {}) if has_request_context() else {}
    key = tuple(paths)
    if key not in cache:
        cache[key] = list(
            db.session.scalars(select(Unit.id).where(or_(*[Unit.path.startswith(p) for p in paths])))
        )
    return cache[key]


def subtree_unit_ids(unit: Unit) -> list[int]:
    """Ids of a unit and all its descendants."""
    return list(db.session.scalars(select(Unit.id).where(Unit.path.startswith(unit.path))))


def can(user: Any, permission: str, unit: Unit | int | None = None) -> bool:
    """May ``user`` use a staff ``permission`` in ``unit`` (or everywhere, if None)?"""
    if user is None:
        return True
    if unit is None:
        return scope_paths(user, permission) is None
    if isinstance(unit, int):
        unit = db.session.get(Unit, unit)
        if unit is None:
            return False
    paths = scope_paths(user, permission)
    return paths is None or any(unit.path.startswith(p) for p in paths)


# --- the rule for each kind of object ---------------------------------------------------


def _member_of(user: Any) -> Member | None:
    member = getattr(user, "member", None)
    return member if member is not None and member.deleted_at is None else None


def _event_open_to(user: Any, event: Event) -> bool:
    """Published events of the member's own unit and the units above it."""
    member = _member_of(user)
    return member is not None and event.status != "draft" and event.unit_id in member.unit.ancestor_ids


def _events_open_clause(user: Any) -> ColumnElement[bool]:
    member = _member_of(user)
    if member is None:
        return false()
    return and_(Event.unit_id.in_(member.unit.ancestor_ids), Event.status != "draft")


@dataclass(frozen=True)
class Rule:
    """How one kind of object is reached.

    ``read`` is the staff permission that makes the object visible (None: any
    staff permission); ``units`` the units it lives in (empty: a global
    object, reached only by global grants); ``own`` says whether a
    self-service permission reaches this object for this user, and
    ``own_clause`` is the same rule as SQL, for lists.
    """

    read: str | None
    units: Callable[[Any], list[Unit]]
    own: Callable[[Any, Any, str], bool] | None = None
    own_clause: Callable[[Any, str], ColumnElement[bool]] | None = None
    own_permissions: frozenset[str] = field(default_factory=frozenset)


def _user_units(user: User) -> list[Unit]:
    units = [a.unit for a in user.assignments if a.unit is not None]
    if user.member is not None:
        units.append(user.member.unit)
    return units


RULES: dict[type, Rule] = {
    Member: Rule(
        "members.read",
        lambda m: [m.unit],
        own=lambda user, m, _perm: _member_of(user) is m,
        own_clause=lambda user, _perm: Member.id == (getattr(_member_of(user), "id", None) or 0),
        # The member's own record is also where they read their referrals and record invitations.
        own_permissions=frozenset({"profile.read_own", "profile.update_own", "referrals.read_own",
                                   "referrals.create"}),
    ),
    MembershipCard: Rule(
        "cards.read",
        lambda c: [c.member.unit],
        own=lambda user, c, _perm: _member_of(user) is not None and c.member_id == _member_of(user).id,
        own_clause=lambda user, _perm: MembershipCard.member_id == (getattr(_member_of(user), "id", None) or 0),
        own_permissions=frozenset({"cards.read_own"}),
    ),
    Event: Rule(
        "events.read",
        lambda e: [e.unit],
        own=lambda user, e, _perm: _event_open_to(user, e),
        own_clause=lambda user, _perm: _events_open_clause(user),
        own_permissions=frozenset({"events.read", "events.register"}),
    ),
    EventAttachment: Rule(
        "events.read",
        lambda a: [a.event.unit],
        own=lambda user, a, _perm: _event_open_to(user, a.event),
        own_permissions=frozenset({"events.read"}),
    ),
    EventRegistration: Rule(
        "events.read",
        lambda r: [r.event.unit],
        own=lambda user, r, _perm: _member_of(user) is not None and r.member_id == _member_of(user).id,
        own_clause=lambda user, _perm: EventRegistration.member_id == (getattr(_member_of(user), "id", None) or 0),
        own_permissions=frozenset({"events.read", "events.register"}),
    ),
    Unit: Rule(None, lambda u: [u]),
    User: Rule("users.read", _user_units),
    RoleAssignment: Rule("users.read", lambda a: [a.unit] if a.unit is not None else []),
    AuditEntry: Rule("reports.read", lambda e: [db.session.get(Unit, e.unit_id)] if e.unit_id is not None else []),
    # Mail about a member lives in the member's (current) unit; mail about no member (a test
    # email, a staff login's) in none, so only global grants reach it (app/services/mail).
    MailMessage: Rule("members.read", lambda m: [m.member.unit] if m.member is not None else []),
    # A member's requests about their own record live in the member's (current) unit (staff queues).
    MemberChangeRequest: Rule("members.read", lambda r: [r.member.unit]),
    ErasureRequest: Rule("members.read", lambda r: [r.member.unit]),
    # A referral lives where its referrer belongs (who recruited is what staff count and
    # credit); the referrer reaches their own with the member role.
    Referral: Rule(
        "referrals.read",
        lambda r: [r.referrer.unit],
        own=lambda user, r, _perm: _member_of(user) is not None and r.referrer_id == _member_of(user).id,
        own_clause=lambda user, _perm: Referral.referrer_id == (getattr(_member_of(user), "id", None) or 0),
        own_permissions=frozenset({"referrals.read_own", "referrals.create"}),
    ),
    # A payment lives in the unit where it was paid (the member's unit then): the ward treasurer's.
    Payment: Rule("payments.read", lambda p: [db.session.get(Unit, p.unit_id)]),
    PointsEntry: Rule(
        "referrals.read",
        lambda e: [e.member.unit],
        own=lambda user, e, _perm: _member_of(user) is not None and e.member_id == _member_of(user).id,
        own_clause=lambda user, _perm: PointsEntry.member_id == (getattr(_member_of(user), "id", None) or 0),
        own_permissions=frozenset({"referrals.read_own"}),
    ),
}


def _rule(obj: Any) -> Rule:
    try:
        return RULES[type(obj)]
    except KeyError:
        raise TypeError(f"{type(obj).__name__} has no access rule in app.security.RULES") from None


def _staff_reaches(user: Any, permission: str | None, units: list[Unit]) -> bool:
    """Does a staff grant for ``permission`` (None: any staff grant) cover one of ``units``?"""
    for gr in grants_for(user):
        if gr.self_service or (permission is not None and not _matches(gr.permission, permission)):
            continue
        if gr.unit_path is None or any(u.path.startswith(gr.unit_path) for u in units):
            return True
    return False


def _own_reaches(user: Any, permission: str, rule: Rule, obj: Any) -> bool:
    """Does a self-service grant of ``permission`` reach ``obj`` for this user?"""
    if rule.own is None or permission not in rule.own_permissions:
        return False
    if permission not in SELF_ONLY and has_console_access(user):
        return False  # staff read as staff: a member role never widens what they see
    held = any(gr.self_service and _matches(gr.permission, permission) for gr in grants_for(user))
    return held and rule.own(user, obj, permission)


def permits(user: Any, permission: str, obj: Any) -> bool:
    """May ``user`` use ``permission`` on ``obj``? (For buttons; services call ``authorize``.)"""
    if user is None:
        return True
    rule = _rule(obj)
    return _staff_reaches(user, permission, rule.units(obj)) or _own_reaches(user, permission, rule, obj)


def reaches(user: Any, obj: Any) -> bool:
    """Is ``obj`` visible to ``user`` at all (by staff read scope or self-service)?"""
    if user is None:
        return True
    rule = _rule(obj)
    if _staff_reaches(user, rule.read, rule.units(obj)):
        return True
    if has_console_access(user):
        return False  # staff see as staff; their own records still pass ``permits`` (self-service)
    return any(_own_reaches(user, perm, rule, obj) for perm in rule.own_permissions)


def authorize(actor: Any, permission: str, obj: Any, *, message: str | None = None) -> None:
    """Let ``actor`` use ``permission`` on ``obj``, or raise.

    ``NotFound`` when the object is outside everything the actor can see (the
    same answer as a missing object, so scope reveals nothing); ``Forbidden``
    when they can see it but lack this permission. ``message`` explains a
    refusal in words for the thing being done ("You may not delete members here.").
    """
    if permits(actor, permission, obj):
        return
    if reaches(actor, obj) or not _reads_any(actor, _rule(obj)):
        raise Forbidden(message, permission=permission)
    raise NotFound()


def _reads_any(user: Any, rule: Rule) -> bool:
    """Could ``user`` see any object of this kind at all? If not, a refusal reveals nothing: 403.

    (A member asking the API for a member record holds members.read nowhere;
    the console answers such users 403 at its door too, so the two agree.)
    """
    return has_console_access(user) if rule.read is None else has_permission(user, rule.read)


def check_unit_choice(actor: Any, unit: Unit | None, permission: str, *, field: str = "unit_id",
                      refusal: str = "You may not do this there.") -> None:
    """A unit named in input (a form field, a JSON body) for ``permission``: a message on that field.

    Unknown or out of reach: 422, the same words for both so nothing is
    revealed; visible without the permission: 403. ``unit`` None means
    "everywhere" (a global role, a top-level unit) and needs a global grant.
    """
    if actor is None or can(actor, permission, unit):
        return
    if unit is not None and not reaches(actor, unit):
        raise ServiceError("That unit does not exist or is outside your area.", field=field, status=422)
    raise ServiceError(refusal, field=field, status=403)


def unit_choice(actor: Any, unit_id: Any, permission: str, *, field: str = "unit_id",
                refusal: str = "You may not do this there.") -> Unit:
    """Load the unit an input names by id and ``check_unit_choice`` it."""
    pk = parse_id(unit_id.id if isinstance(unit_id, Unit) else unit_id)
    unit = db.session.get(Unit, pk) if pk is not None else None
    if unit is None:
        raise ServiceError("That unit does not exist or is outside your area.", field=field, status=422)
    check_unit_choice(actor, unit, permission, field=field, refusal=refusal)
    return unit


def authorize_everywhere(actor: Any, permission: str, *, message: str | None = None) -> None:
    """For things that belong to no unit (roles): the permission must be held globally, else ``Forbidden``."""
    if not can(actor, permission):
        raise Forbidden(message, permission=permission)


def load_for(actor: Any, model: type, object_id: Any, permission: str, *, deleted: bool = False,
             message: str | None = None) -> Any:
    """Load one object the actor may use ``permission`` on; see ``authorize`` for the answers.

    Soft-deleted members count as missing unless ``deleted`` is asked for (restore).
    """
    pk = parse_id(object_id)
    obj = db.session.get(model, pk) if pk is not None else None
    if obj is None or (model is Member and obj.deleted_at is not None and not deleted):
        raise NotFound()
    authorize(actor, permission, obj, message=message)
    return obj


def is_super_admin(user: Any) -> bool:
    """Holds every permission everywhere: a global ``*`` grant (the super_admin role)."""
    if user is None:
        return True
    return any(gr.permission == "*" and gr.unit_path is None and not gr.self_service for gr in grants_for(user))


def load_started(actor: Any, model: type, object_id: Any, *, owner: str = "created_by_id") -> Any:
    """Something a person started (a background job): theirs, or any for super admins; else ``NotFound``.

    Jobs belong to no unit (an import names its wards row by row), so unit
    scope cannot decide: only who started it can see it, and super admins.
    """
    pk = parse_id(object_id)
    obj = db.session.get(model, pk) if pk is not None else None
    if obj is None:
        raise NotFound()
    started_by = getattr(obj, owner)
    if not is_super_admin(actor) and (started_by is None or started_by != getattr(actor, "id", None)):
        raise NotFound()
    return obj


# --- lists ------------------------------------------------------------------------------


def _scope_clause(model: type, unit_ids: list[int]) -> ColumnElement[bool]:
    if model is Unit:
        return Unit.id.in_(unit_ids)
    if model is User:
        in_scope_assignment = (
            select(RoleAssignment.id)
            .where(RoleAssignment.user_id == User.id, RoleAssignment.unit_id.in_(unit_ids))
            .exists()
        )
        in_scope_member = (
            select(Member.id).where(Member.id == User.member_id, Member.unit_id.in_(unit_ids)).exists()
        )
        return or_(in_scope_assignment, in_scope_member)
    if model in (MailMessage, MemberChangeRequest, ErasureRequest, PointsEntry):  # by the member it concerns
        return model.member_id.in_(select(Member.id).where(Member.unit_id.in_(unit_ids)))
    if model is Referral:  # by its referrer, wherever they are now (``Referral.unit_id`` is a property)
        return Referral.referrer_id.in_(select(Member.id).where(Member.unit_id.in_(unit_ids)))
    if model in (Member, AuditEntry, RoleAssignment) or hasattr(model, "unit_id"):
        return model.unit_id.in_(unit_ids)
    if model is EventRegistration:  # a registration lives where its event does
        return EventRegistration.event_id.in_(select(Event.id).where(Event.unit_id.in_(unit_ids)))
    raise TypeError(f"{model.__name__} has no scope rule")


def scope_filter(user: Any, permission: str, model: type) -> ColumnElement[bool] | None:
    """The WHERE clause confining ``model`` rows to what ``user`` may reach; None when unrestricted.

    Staff grants confine by unit. A user with no staff grant for the
    permission but a self-service one gets the model's own rule (a member's
    events: those open to their unit). Users with neither get a clause that
    matches nothing, never an error, so lists are empty and counts read zero.
    """
    if user is None:
        return None
    unit_ids = scope_unit_ids(user, permission)
    if unit_ids is None:
        return None
    if unit_ids:
        return _scope_clause(model, unit_ids)
    rule = RULES.get(model)
    if rule is not None and rule.own_clause is not None and permission in rule.own_permissions:
        if permission in SELF_ONLY or not has_console_access(user):
            if any(gr.self_service and _matches(gr.permission, permission) for gr in grants_for(user)):
                return rule.own_clause(user, permission)
    return false()


def scoped(stmt: Select, user: Any, permission: str, model: type | None = None) -> Select:
    """Restrict a SELECT to what ``user`` may reach with ``permission``.

    ``model`` defaults to the statement's first entity.
    """
    if model is None:
        model = stmt.column_descriptions[0]["entity"]
    clause = scope_filter(user, permission, model)
    return stmt if clause is None else stmt.where(clause)
