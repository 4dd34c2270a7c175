"""Who the matrix signs in as, where each object lives, and the one rule that says what each must get.

The rule is the target of issue 8, stated once so that every row of the
table in ``routes.py`` follows it:

- anonymous: the console redirects to the login page; the API answers 401;
- a console route for someone without console access (a plain member): 403;
- an object outside what the user may see: 404, as if it did not exist,
  whatever the action (unless they cannot read that kind of thing anywhere:
  then the whole area is closed to them, 403);
- an object they may see but may not act on with the route's permission
  there (a coordinator deleting in their ward, a province reader writing
  outside their ward): 403;
- an object named in the *body* rather than the URL (the unit of a new
  member, the member of a new card) and out of sight: the API answers 422
  ("no such unit in your area"), the console re-renders the form with the
  field's message ("form"). Seen but not theirs to act on: 403 in the API;
  the console's choice list only offers permitted units, so "form" again;
- otherwise the route works (a 2xx, or a redirect that is not to the login
  page; for console forms only a redirect: a re-rendered form is "form").

Self-service permissions (the global ``member`` role) reach the actor's own
records and the published events open to their unit and its ancestors; they
never widen a staff scope. Self-service routes (the member portal and
``/api/v1/me``; ``own`` rows) follow ``expected_own``: anonymous callers go to
the login page (401 in the API), a login without a member record gets 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.services.rbac import SYSTEM_ROLES

# The geography of the world (tests/conftest.py's ``tree``), plus empty units to delete:
# P1 > D1 > C1 > W1, W2, E-in ;  P1 > D2 > C2 > W3, E-near ;  P2 > D3 > C3 > W4, E-out
UNITS: dict[str, tuple[str, str | None]] = {  # key: (name, parent key); the code is the key upper-cased
    "p1": ("Northern", None), "d1": ("Kasama", "p1"), "c1": ("Lukashya", "d1"), "w1": ("Lukashya Ward 1", "c1"),
    "w2": ("Lukashya Ward 2", "c1"), "d2": ("Mbala", "p1"), "c2": ("Lunte", "d2"), "w3": ("Lunte Ward 1", "c2"),
    "p2": ("Highlands", None), "d3": ("Chipata", "p2"), "c3": ("Luangeni", "d3"), "w4": ("Luangeni Ward 1", "c3"),
    "e_in": ("Empty in", "c1"), "e_near": ("Empty near", "c2"), "e_out": ("Empty out", "c3"),
}
PARENT = {key: parent for key, (_name, parent) in UNITS.items()}


def ancestors(unit: str) -> list[str]:
    """The unit and every unit above it."""
    chain: list[str] = []
    current: str | None = unit
    while current is not None:
        chain.append(current)
        current = PARENT[current]
    return chain


# --- principals ----------------------------------------------------------------------

# The reader's extra role: reads across the province, on top of ward_coordinator at W1.
READER_ROLE = ("matrix_reader", ["members.read", "events.read", "cards.read", "referrals.read"])
ROLE_PERMISSIONS = {name: set(perms) for name, (_desc, perms) in SYSTEM_ROLES.items()}
ROLE_PERMISSIONS[READER_ROLE[0]] = set(READER_ROLE[1])
SELF_SERVICE_ROLES = {"member"}


@dataclass(frozen=True)
class Principal:
    email: str | None  # None: anonymous
    roles: tuple[tuple[str, str | None], ...] = ()  # (role name, unit key or None for everywhere)
    member_of: str | None = None  # the unit of the member record linked to the login

    def _grants(self, permission: str, *, self_service: bool):
        for role, unit in self.roles:
            if (role in SELF_SERVICE_ROLES) != self_service:
                continue
            perms = ROLE_PERMISSIONS[role]
            if "*" in perms or permission in perms:
                yield unit

    @property
    def staff(self) -> bool:
        return any(role not in SELF_SERVICE_ROLES for role, _unit in self.roles)

    def holds(self, permission: str) -> bool:
        """Holds it somewhere, as staff or self-service ("console": is staff; "api": is signed in)."""
        if permission == "api":
            return self.email is not None
        if permission == "console":
            return self.staff
        return any(True for _ in self._grants(permission, self_service=False)) or \
            any(True for _ in self._grants(permission, self_service=True))

    def everywhere(self, permission: str) -> bool:
        return None in self._grants(permission, self_service=False)

    def covers(self, permission: str, unit: str) -> bool:
        """Staff grant of ``permission`` over ``unit`` (self-service never covers a unit)."""
        if permission == "console":
            return self.staff
        return any(at is None or at in ancestors(unit) for at in self._grants(permission, self_service=False))

    def event_open_to_me(self, unit: str) -> bool:
        """Self-service: a published event of my own unit or a unit above it."""
        return (self.member_of is not None and any(True for _ in self._grants("events.read", self_service=True))
                and unit in ancestors(self.member_of))


COORDINATOR = ("ward_coordinator", "w1")
PRINCIPALS: dict[str, Principal] = {
    "super": Principal("super@test.org", (("super_admin", None),)),
    "admin": Principal("admin@test.org", (("admin", None),)),
    "p1_super": Principal("p1super@test.org", (("super_admin", "p1"),)),
    "coordinator": Principal("coord@test.org", (COORDINATOR,)),
    # Reads wider than writes: 404 outside the province, 403 outside the ward.
    "reader": Principal("reader@test.org", (COORDINATOR, (READER_ROLE[0], "p1"))),
    # The seed gives every member the global member role: it must add nothing to staff scope.
    "coord_member": Principal("coordmember@test.org", (COORDINATOR, ("member", None)), member_of="w1"),
    "member": Principal("member@test.org", (("member", None),), member_of="w1"),
    "anonymous": Principal(None),
}


# --- objects -------------------------------------------------------------------------

# Each route is tried on an object inside the coordinator's ward (in), one in the same
# province but another ward (near) and one in the other province (out). Jobs and
# uploads belong to a person, not a unit: the principal's own (in) and another's (out).
WARD_SIDES = {"in": "w1", "near": "w2", "out": "w4"}
SIDE_UNITS: dict[str, dict[str, str]] = {
    "branch": {"in": "c1", "near": "c2", "out": "c3"},  # a parent for a new unit
    "empty_unit": {"in": "e_in", "near": "e_near", "out": "e_out"},  # deletable
    "job": {"in": "", "out": ""},
    "api_job": {"in": "", "out": ""},
    "upload": {"in": "", "out": ""},
}


def sides(obj: str | None) -> list[str]:
    if obj is None:
        return ["in"]
    return list(SIDE_UNITS.get(obj, WARD_SIDES))


def sees(p: Principal, reads: str, obj: str, side: str) -> bool:
    """May ``p`` see this object at all (the ``reads`` permission over its unit, or ownership)?"""
    if obj == "job":  # own jobs, or all of them for global report readers
        return side == "in" or p.everywhere("reports.read")
    if obj == "api_job":  # the API: own jobs, or all of them for super admins (``*`` everywhere)
        return side == "in" or p.everywhere("*")
    if obj == "upload":  # own uploads, or all of them for global importers
        return side == "in" or p.everywhere("members.create")
    unit = SIDE_UNITS.get(obj, WARD_SIDES)[side]
    if obj == "event" and reads == "events.read" and p.event_open_to_me(unit):  # matrix events are published
        return True
    return p.covers(reads, unit)


def expected_own(p: Principal, row, side: str):
    """Self-service rows: the caller's own record, and events open to them as a member.

    A login without a member record has no "own" anything: 404 (before any
    permission is asked, so staff and members answer alike). A member
    without the permission: 403. An event is theirs to use when it is open
    to their unit (the world's events are published): others answer 404.
    """
    if p.member_of is None:
        return 404
    if not p.holds(row.needs):
        return 403
    if row.obj is None:
        return "ok"
    return "ok" if p.event_open_to_me(SIDE_UNITS.get(row.obj, WARD_SIDES)[side]) else 404


def expected(name: str, row, side: str):
    """The answer ``name`` must get from ``row`` on the object of ``side``: 401/403/404/422, "login", "form" or "ok"."""
    p = PRINCIPALS[name]
    if row.needs == "public":
        return "ok"
    if p.email is None:
        return 401 if row.api else "login"
    if row.own:
        return expected_own(p, row, side)
    if row.console and not p.staff:
        return 403
    if row.obj is None:
        if not p.holds(row.needs) or (row.global_only and not p.everywhere(row.needs)):
            return 403
        return "ok"
    visible = sees(p, row.reads, row.obj, side)
    if row.in_body:
        if not p.holds(row.needs):
            return 403
        refused = "form" if row.console else 422
        if not visible:
            return refused
        if not p.covers(row.needs, SIDE_UNITS.get(row.obj, WARD_SIDES)[side]):
            return refused if row.console else 403
        return "ok"
    if not visible:
        return 404 if p.holds(row.reads) else 403
    if row.needs == row.reads:
        return "ok" if p.holds(row.needs) else 403
    return "ok" if p.covers(row.needs, SIDE_UNITS.get(row.obj, WARD_SIDES)[side]) else 403
