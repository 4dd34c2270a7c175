"""The permission matrix: every console and API route, for every kind of user, inside and outside their scope.

Principals: a global super admin, a global admin, a super admin confined to
province P1 ("p1_super"), the coordinator of ward W1, a plain member and an
anonymous visitor. Each route is tried on an object inside W1 and one in W4
(province P2). The expected answer follows one rule:

- anonymous: the console redirects to the login page; the API answers 401;
- no console access (plain member) on console routes, or lacking the route's
  permission everywhere: 403;
- an object outside what the user may see: 404, exactly as if it did not
  exist, whatever the action (checked before the permission for the action);
- otherwise the route works (a 2xx or a redirect that is not to the login page).

``test_every_route_is_in_the_matrix`` fails when a route is added without a
row here, so no route escapes the check.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Job, Member, User
from app.services import jobs
from app.services import members as member_service
from app.services import rbac
from app.services.rbac import SYSTEM_ROLES
from tests.conftest import PASSWORD, csrf_token_from, login

PRINCIPALS = ["super", "admin", "p1_super", "coordinator", "member", "anonymous"]
EMAILS = {
    "super": "super@test.org",
    "admin": "admin@test.org",
    "p1_super": "p1super@test.org",
    "coordinator": "coord@test.org",
    "member": "member@test.org",
}
HELD = {
    "super": {"*"},
    "p1_super": {"*"},
    "admin": set(SYSTEM_ROLES["admin"][1]),
    "coordinator": set(SYSTEM_ROLES["ward_coordinator"][1]),
    "member": set(SYSTEM_ROLES["member"][1]),
    "anonymous": set(),
}
GLOBAL = {"super", "admin"}


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    path: str  # with {member}, {unit}, {user}, {assignment}, {role}, {entry} placeholders
    permission: str  # "console" = any staff; "public" = anyone
    obj: str | None = None  # which kind of object the path or body names
    body: dict = field(default_factory=dict)
    # Routes acting on objects that belong to no unit (roles, the permission
    # catalogue) need the permission everywhere; p1_super holds it only in P1.
    global_only: bool = False
    # What the user must hold to see the object at all (default: <resource>.read).
    visible_with: str | None = None
    # The answer for an object outside scope named in the body rather than the URL.
    refusal: int | None = None

    @property
    def surface(self) -> str:
        return "api" if self.path.startswith("/api/") else "console"


ROUTES = [
    # --- console: members
    Route("admin.index", "GET", "/admin/", "console"),
    Route("member.index_view", "GET", "/admin/member/", "members.read"),
    Route("member.details_view", "GET", "/admin/member/details/?id={member}", "members.read", "member"),
    Route("member.photo_view", "GET", "/admin/member/photo/{member}", "members.read", "member"),
    Route("member.create_view", "GET", "/admin/member/new/", "members.create"),
    Route("member.edit_view", "GET", "/admin/member/edit/?id={member}", "members.update", "member"),
    Route("member.status_view", "GET", "/admin/member/status/{member}", "members.update", "member"),
    Route("member.delete_view", "POST", "/admin/member/delete/", "members.delete", "member", {"id": "{member}"}),
    Route("member.deleted_view", "GET", "/admin/member/deleted/", "members.delete"),
    Route("member.restore_view", "POST", "/admin/member/restore/", "members.delete", "deleted_member",
          {"id": "{deleted_member}"}, visible_with="members.delete"),
    # --- console: geography
    Route("geo.index", "GET", "/admin/geography/", "members.read"),
    Route("geo.create", "GET", "/admin/geography/new", "units.create"),
    Route("geo.edit", "GET", "/admin/geography/{unit}/edit", "units.update", "unit"),
    Route("geo.move", "POST", "/admin/geography/{unit}/move", "units.update", "unit", {"parent": "{unit_parent}"}),
    Route("geo.delete", "GET", "/admin/geography/{unit}/delete", "units.delete", "unit"),
    # --- console: access
    Route("roles.index", "GET", "/admin/roles/", "roles.read"),
    Route("roles.create", "GET", "/admin/roles/new", "roles.create", global_only=True),
    Route("roles.edit", "GET", "/admin/roles/{role}/edit", "roles.update", global_only=True),
    Route("roles.delete", "GET", "/admin/roles/{role}/delete", "roles.delete", global_only=True),
    Route("users.index", "GET", "/admin/users/", "users.read"),
    Route("users.create", "GET", "/admin/users/new", "users.create"),
    Route("users.details", "GET", "/admin/users/{user}/", "users.read", "user"),
    Route("users.permissions", "GET", "/admin/users/{user}/permissions", "users.read", "user"),
    Route("users.set_active", "POST", "/admin/users/{user}/active", "users.update", "user", {"active": "0"}),
    Route("users.unlock", "POST", "/admin/users/{user}/unlock", "users.update", "user"),
    Route("users.assign", "POST", "/admin/users/{user}/assign", "users.update", "user",
          {"role_id": "{member_role}", "unit_id": "{unit}"}),
    Route("users.unassign", "POST", "/admin/users/{user}/assignments/{assignment}/remove", "users.update", "user"),
    # --- console: audit log
    Route("audit.index_view", "GET", "/admin/audit/", "reports.read"),
    Route("audit.details_view", "GET", "/admin/audit/details/?id={entry}", "reports.read", "entry"),
    # --- console: background jobs (visible to their owner, or to global report readers)
    Route("jobs.index", "GET", "/admin/jobs/", "console"),
    Route("jobs.details", "GET", "/admin/jobs/{job}", "console", "job", visible_with="console"),
    Route("jobs.progress", "GET", "/admin/jobs/{job}/progress", "console", "job", visible_with="console"),
    Route("jobs.download", "GET", "/admin/jobs/{job}/files/{job_file}", "console", "job", visible_with="console"),
    Route("jobs.retry", "POST", "/admin/jobs/{job}/retry", "console", "job", visible_with="console"),
    # --- console: member imports (an upload is visible to its owner, or to global importers) and exports
    Route("imports.index", "GET", "/admin/imports/", "members.create"),
    Route("imports.mapping", "GET", "/admin/imports/{upload}/mapping", "members.create", "upload",
          visible_with="members.create"),
    Route("imports.preview", "GET", "/admin/imports/{upload}/preview", "members.create", "upload",
          visible_with="members.create"),
    Route("imports.preview_status", "GET", "/admin/imports/{upload}/preview/status", "members.create", "upload",
          visible_with="members.create"),
    Route("imports.start", "POST", "/admin/imports/{upload}/start", "members.create", "upload", {"mode": "valid"},
          visible_with="members.create"),
    Route("member.export_view", "GET", "/admin/member/export/?format=csv", "members.export"),
    # --- console: events
    Route("events.index", "GET", "/admin/events/", "events.read"),
    Route("events.feed", "GET", "/admin/events/feed", "events.read"),
    Route("events.create", "GET", "/admin/events/new", "events.create"),
    Route("events.details", "GET", "/admin/events/{event}/", "events.read", "event"),
    Route("events.counts", "GET", "/admin/events/{event}/counts", "events.read", "event"),
    Route("events.export", "GET", "/admin/events/{event}/export/xlsx", "events.read", "event"),
    Route("events.attachment", "GET", "/admin/events/{event}/attachments/{attachment}", "events.read", "event"),
    Route("events.edit", "GET", "/admin/events/{event}/edit", "events.update", "event"),
    Route("events.set_status", "POST", "/admin/events/{event}/status", "events.update", "event",
          {"status": "cancelled"}),
    Route("events.delete", "POST", "/admin/events/{event}/delete", "events.delete", "event"),
    Route("events.search", "GET", "/admin/events/{event}/search?q=Last", "events.update", "event"),
    Route("events.register", "POST", "/admin/events/{event}/register", "events.update", "event",
          {"member_id": "{member}"}),
    Route("events.attendance", "POST", "/admin/events/{event}/members/{member}/attendance", "events.update",
          "event", {"status": "attended"}),
    Route("events.cancel", "POST", "/admin/events/{event}/members/{member}/cancel", "events.update", "event"),
    Route("events.no_shows", "POST", "/admin/events/{event}/no-shows", "events.update", "event"),
    Route("events.upload", "POST", "/admin/events/{event}/attachments", "events.update", "event"),
    Route("events.delete_attachment", "POST", "/admin/events/{event}/attachments/{attachment}/delete",
          "events.update", "event"),
    Route("events.checkin_page", "GET", "/admin/events/{event}/checkin", "events.update", "event"),
    Route("events.checkin", "POST", "/admin/events/{event}/checkin", "events.update", "event",
          {"member_id": "{member}", "nonce": "matrix-1"}),
    Route("events.lookup", "GET", "/admin/events/{event}/checkin/lookup?q=Last", "events.update", "event"),
    # --- API
    Route("api.list_members", "GET", "/api/v1/members", "members.read"),
    Route("api.create_member", "POST", "/api/v1/members", "members.create", "unit",
          {"first_name": "New", "last_name": "Person", "unit_id": "{unit}"}, refusal=422),
    Route("api.get_member", "GET", "/api/v1/members/{member}", "members.read", "member"),
    Route("api.update_member", "PUT", "/api/v1/members/{member}", "members.update", "member", {"notes": "seen"}),
    Route("api.delete_member", "DELETE", "/api/v1/members/{member}", "members.delete", "member"),
    Route("api.list_units", "GET", "/api/v1/units", "members.read"),
    Route("api.get_unit", "GET", "/api/v1/units/{unit}", "members.read", "unit"),
    Route("api.list_permissions", "GET", "/api/v1/permissions", "roles.read", global_only=True),
    Route("api.list_roles", "GET", "/api/v1/roles", "roles.read", global_only=True),
    Route("api.create_role", "POST", "/api/v1/roles", "roles.create", body={"name": "fresh_role"}, global_only=True),
    Route("api.get_role", "GET", "/api/v1/roles/{role}", "roles.read", global_only=True),
    Route("api.update_role", "PUT", "/api/v1/roles/{role}", "roles.update", body={"description": "x"},
          global_only=True),
    Route("api.delete_role", "DELETE", "/api/v1/roles/{role}", "roles.delete", global_only=True),
    Route("api.get_role_permissions", "GET", "/api/v1/roles/{role}/permissions", "roles.read", global_only=True),
    Route("api.set_role_permissions", "PUT", "/api/v1/roles/{role}/permissions", "roles.update",
          body={"permissions": ["members.read"]}, global_only=True),
    Route("api.list_user_roles", "GET", "/api/v1/users/{user}/roles", "users.read", "user"),
    Route("api.assign_user_role", "POST", "/api/v1/users/{user}/roles", "users.update", "user",
          {"role": "member", "unit_id": "{unit}"}),
    Route("api.remove_user_role", "DELETE", "/api/v1/users/{user}/roles/{assignment}", "users.update", "user"),
    Route("api.user_permissions", "GET", "/api/v1/users/{user}/permissions", "users.read", "user"),
    Route("api.revoke_token", "DELETE", "/api/v1/auth/token", "api"),
    # --- API: events (members see the published events of their units; staff by scope)
    Route("api.list_events", "GET", "/api/v1/events", "events.read"),
    Route("api.create_event", "POST", "/api/v1/events", "events.create", "unit",
          {"title": "New", "start_at": "2031-01-01T10:00:00Z", "end_at": "2031-01-01T12:00:00Z", "unit_id": "{unit}"},
          refusal=422, visible_with="events.create"),
    Route("api.get_event", "GET", "/api/v1/events/{event}", "events.read", "event"),
    Route("api.update_event", "PUT", "/api/v1/events/{event}", "events.update", "event", {"venue": "Hall"}),
    Route("api.delete_event", "DELETE", "/api/v1/events/{event}", "events.delete", "event"),
    Route("api.register_for_event", "POST", "/api/v1/events/{event}/register", "events.update", "event",
          {"member_id": "{member}"}),
    Route("api.cancel_registration", "DELETE", "/api/v1/events/{event}/register/{member}", "events.update", "event"),
    Route("api.list_attendees", "GET", "/api/v1/events/{event}/attendees", "members.read", "event",
          visible_with="events.read"),
    Route("api.set_attendance", "PUT", "/api/v1/events/{event}/attendance/{member}", "events.update", "event",
          {"status": "attended"}),
    Route("api.checkin", "POST", "/api/v1/events/{event}/checkin", "events.update", "event",
          {"member_id": "{member}", "nonce": "matrix-1"}),
    Route("api.member_events", "GET", "/api/v1/members/{member}/events", "members.read", "member"),
    Route("api.export_members", "GET", "/api/v1/members/export", "members.export"),
    # --- membership cards (a card's unit is its member's); verification is public (below)
    Route("cards.index_view", "GET", "/admin/cards/", "cards.read"),
    Route("cards.details_view", "GET", "/admin/cards/details/?id={card}", "cards.read", "card"),
    Route("cards.pdf_view", "GET", "/admin/cards/{card}/pdf", "cards.read", "card"),
    Route("cards.transition_view", "POST", "/admin/cards/{card}/do/suspend", "cards.update", "card",
          {"suspend-reason": "matrix"}),
    Route("cards.issue_view", "POST", "/admin/cards/issue/{cardless}", "cards.create", "cardless",
          {"card_type": "standard"}),
    Route("cards.batch_view", "GET", "/admin/cards/batch/", "cards.create"),
    Route("api.list_cards", "GET", "/api/v1/cards", "cards.read"),
    Route("api.create_card", "POST", "/api/v1/cards", "cards.create", "cardless", {"member_id": "{cardless}"},
          refusal=422),
    Route("api.get_card", "GET", "/api/v1/cards/{card}", "cards.read", "card"),
    Route("api.update_card", "PUT", "/api/v1/cards/{card}", "cards.update", "card",
          {"status": "suspended", "reason": "matrix"}),
    Route("api.revoke_card", "DELETE", "/api/v1/cards/{card}", "cards.update", "card"),
    Route("api.reissue_card", "POST", "/api/v1/cards/{card}/reissue", "cards.create", "card", {"reason": "lost"}),
    Route("api.card_qr", "GET", "/api/v1/cards/{card}/qr", "cards.read", "card"),
    Route("api.card_pdf_file", "GET", "/api/v1/cards/{card}/pdf", "cards.read", "card"),
    Route("api.member_card", "GET", "/api/v1/members/{member}/card", "cards.read", "member"),
    Route("api.renew_member_card", "POST", "/api/v1/members/{member}/card/renew", "cards.update", "member"),
]

# Routes anyone may call, and Flask-Admin's built-in routes that this console
# switches off (they must never answer with data: checked below).
PUBLIC = {"static", "admin.static", "auth.login", "auth.logout", "portal.home", "api.issue_token",
          "api.openapi_document", "verify.page", "api.verify_card"}
SWITCHED_OFF = {
    "member.ajax_lookup": ("GET", "/admin/member/ajax/lookup/?name=unit&query=a"),
    "member.ajax_update": ("POST", "/admin/member/ajax/update/"),
    "member.export": ("GET", "/admin/member/export/csv/"),
    "audit.create_view": ("GET", "/admin/audit/new/"),
    "audit.edit_view": ("GET", "/admin/audit/edit/?id={entry}"),
    "audit.delete_view": ("POST", "/admin/audit/delete/"),
    "audit.action_view": ("POST", "/admin/audit/action/"),
    "audit.ajax_lookup": ("GET", "/admin/audit/ajax/lookup/?name=actor&query=a"),
    "audit.ajax_update": ("POST", "/admin/audit/ajax/update/"),
    "audit.export": ("GET", "/admin/audit/export/csv/"),
    "cards.create_view": ("GET", "/admin/cards/new/"),
    "cards.edit_view": ("GET", "/admin/cards/edit/?id={card}"),
    "cards.delete_view": ("POST", "/admin/cards/delete/"),
    "cards.action_view": ("POST", "/admin/cards/action/"),
    "cards.ajax_lookup": ("GET", "/admin/cards/ajax/lookup/?name=member&query=a"),
    "cards.ajax_update": ("POST", "/admin/cards/ajax/update/"),
    "cards.export": ("GET", "/admin/cards/export/csv/"),
}


def holds(principal: str, permission: str) -> bool:
    if permission in ("public", "api"):
        return principal != "anonymous"
    if permission == "console":
        return principal in ("super", "admin", "p1_super", "coordinator")
    return "*" in HELD[principal] or permission in HELD[principal]


def expected(principal: str, route: Route, inside: bool):
    """403/404/'login'/401 for a refusal, 'ok' when the route must work."""
    if principal == "anonymous":
        return "login" if route.surface == "console" else 401
    if route.surface == "console" and principal == "member":
        return 403
    readable = holds(principal, route.visible_with or route.permission.split(".")[0] + ".read")
    if route.obj and not inside and principal not in GLOBAL and readable:
        return route.refusal or 404  # invisible objects look missing, whatever the action
    if not holds(principal, route.permission):
        return 403
    if route.global_only and principal not in GLOBAL:
        return 403
    if route.obj and not inside and principal not in GLOBAL:
        return route.refusal or 404
    return "ok"


@pytest.fixture()
def world(tree, staff, make_user, make_member, client):
    """Objects inside W1 and inside W4 for every kind of route, plus the extra principals."""
    p1_super = make_user("p1super@test.org")
    rbac.assign_role(None, p1_super, rbac.role_by_name("super_admin"), tree["p1"])
    photo = io.BytesIO()
    Image.new("RGB", (40, 40), "blue").save(photo, "PNG")
    objects = {}
    for side, ward in (("in", tree["w1"]), ("out", tree["w4"])):
        member = make_member(ward)
        member_service.set_photo(None, member, photo.getvalue())
        deleted = make_member(ward)
        member_service.delete_member(None, deleted)
        user = make_user(f"{side}@test.org", "ward_coordinator", ward)
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.object_id == str(member.id),
                                                           AuditEntry.object_type == "Member"))
        objects[side] = {
            "member": member.id, "deleted_member": deleted.id, "unit": ward.id, "unit_parent": ward.parent_id,
            "user": user.id, "assignment": user.assignments[0].id, "entry": entry.id,
        }
    role = rbac.create_role(None, "matrix_role", "", ["members.read"])
    member_role = rbac.role_by_name("member")
    for side in objects.values():
        side.update(role=role.id, member_role=member_role.id)
    _add_events(objects, staff, tree, make_member)
    _add_cards(objects, tree, make_member)
    db.session.commit()
    return objects


def _add_events(objects, staff, tree, make_member):
    """A published event open for check-in in each ward, with the side's member registered and an
    agenda attached. The member login is linked to a member of W1: members see their units' events."""
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services import events as event_service

    if staff["member"].member_id is None:
        staff["member"].member = make_member(tree["w1"])
    for side, ward in (("in", tree["w1"]), ("out", tree["w4"])):
        event = event_service.create_event(None, {
            "title": f"Matrix event {side}", "start_at": utcnow() - timedelta(hours=1),
            "end_at": utcnow() + timedelta(hours=3), "unit_id": ward.id, "status": "upcoming"})
        event_service.register(None, event, db.session.get(Member, objects[side]["member"]))
        agenda = event_service.add_attachment(None, event, "agenda.pdf", b"%PDF-1.4\n%%EOF\n")
        objects[side].update(event=event.id, attachment=agenda.id)


def _add_cards(objects, tree, make_member):
    """A card for each side's member, and a member without one to issue to (issue #4)."""
    from app.services import cards as card_service

    for side, ward in (("in", tree["w1"]), ("out", tree["w4"])):
        card = card_service.issue_card(None, db.session.get(Member, objects[side]["member"]))
        objects[side].update(card=card.id, cardless=make_member(ward).id)


@jobs.handler("matrix.noop")
def _noop_job(ctx):
    ctx.add_file("out.txt", "text/plain", b"done")
    return {}


def _add_jobs(world, principal):
    """A finished job of the principal's own ("in") and one of another user ("out")."""
    owners = {"in": db.session.scalar(select(User).where(User.email == EMAILS.get(principal, "super@test.org"))),
              "out": db.session.scalar(select(User).where(User.email == "out@test.org"))}
    for side, owner in owners.items():
        job = jobs.create_job(owner, "matrix.noop")
        db.session.commit()
        jobs.run(job.id)
        world[side]["job"] = job.id
        world[side]["job_file"] = db.session.get(Job, job.id).files[0].id


_UPLOAD_FILES: list = []


def _add_uploads(world, principal):
    """A checked upload of the principal's own ("in") and one of another user ("out")."""
    from pathlib import Path

    from app.services import imports as import_service

    data = Path(__file__).resolve().parent / "data" / "members_utf8.csv"
    owners = {"in": db.session.scalar(select(User).where(User.email == EMAILS.get(principal, "super@test.org"))),
              "out": db.session.scalar(select(User).where(User.email == "out@test.org"))}
    for side, owner in owners.items():
        with open(data, "rb") as fh:
            upload = import_service.save_upload(owner, fh, "members.csv")
        _UPLOAD_FILES.append(import_service.upload_path(upload))
        import_service.set_mapping(None, upload, import_service.guess_mapping(upload.headers),
                                   {"default_unit_id": None, "date_order": "DMY", "default_status": "pending"})
        preview = import_service.start_preview(owner, upload)
        db.session.commit()
        jobs.run(preview.id)
        world[side]["upload"] = upload.id


@pytest.fixture(autouse=True)
def _remove_upload_files():
    yield
    while _UPLOAD_FILES:
        _UPLOAD_FILES.pop().unlink(missing_ok=True)


def _fill(value, values):
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _call(client, principal, route_method, path, body, token_cache):
    if path.startswith("/api/"):
        headers = {}
        if principal != "anonymous":
            if principal not in token_cache:
                response = client.post("/api/v1/auth/token", json={"email": EMAILS[principal], "password": PASSWORD})
                token_cache[principal] = response.get_json()["token"]
            headers["Authorization"] = f"Bearer {token_cache[principal]}"
        json_body = None
        if route_method in ("POST", "PUT"):
            json_body = {k: (int(v) if k.endswith("_id") and str(v).isdigit() else v) for k, v in body.items()}
        db.session.commit()
        return client.open(path, method=route_method, headers=headers, json=json_body)
    data = dict(body)
    if route_method == "POST":
        data["csrf_token"] = csrf_token_from(client.get("/login").get_data(as_text=True))
    db.session.commit()
    return client.open(path, method=route_method, data=data if route_method == "POST" else None)


def _verdict(response) -> object:
    code = response.status_code
    if code in (301, 302, 303) and "/login" in response.headers.get("Location", ""):
        return "login"
    if code in (401, 403, 404):
        return code
    assert code < 500, f"server error {code}"
    if code in (200, 201, 204, 301, 302, 303):
        return "ok"
    return code


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.endpoint)
def test_matrix(client, world, principal, route):
    if principal != "anonymous":
        login(client, EMAILS[principal])
    tokens: dict[str, str] = {}
    if route.obj == "job":
        _add_jobs(world, principal)
    if route.obj == "upload":
        _add_uploads(world, principal)
    for inside, side in ((True, "in"), (False, "out")):
        if not route.obj and not inside:
            continue
        values = world[side]
        path = route.path.format(**values)
        body = {k: _fill(v, values) for k, v in route.body.items()}
        response = _call(client, principal, route.method, path, body, tokens)
        want = expected(principal, route, inside)
        got = _verdict(response)
        assert got == want, (
            f"{principal} {route.method} {path} ({'in' if inside else 'out of'} scope): "
            f"expected {want}, got {response.status_code} {response.get_data(as_text=True)[:300]}"
        )


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint", sorted(SWITCHED_OFF))
def test_switched_off_routes_never_act(client, world, principal, endpoint):
    """Flask-Admin's unused routes refuse or bounce, and change nothing."""
    if principal != "anonymous":
        login(client, EMAILS[principal])
    method, path = SWITCHED_OFF[endpoint]
    path = path.format(**world["out"])
    data = {"action": "delete", "rowid": [str(world["out"]["member"]), str(world["in"]["member"])],
            "id": str(world["out"]["entry"])}
    if method == "POST":
        data["csrf_token"] = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.open(path, method=method, data=data if method == "POST" else None)
    assert response.status_code in (302, 400, 403, 404, 405), response.status_code
    db.session.expire_all()
    assert db.session.get(Member, world["out"]["member"]).deleted_at is None
    assert db.session.get(AuditEntry, world["out"]["entry"]) is not None


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_bulk_delete_only_touches_rows_in_scope(client, world, principal):
    """member.action_view: the list's bulk delete ignores ids outside the user's scope."""
    if principal != "anonymous":
        login(client, EMAILS[principal])
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    ids = [str(world["in"]["member"]), str(world["out"]["member"])]
    response = client.post("/admin/member/action/", data={"action": "delete", "rowid": ids, "csrf_token": token})
    db.session.expire_all()
    deleted = {side for side in ("in", "out") if db.session.get(Member, world[side]["member"]).deleted_at}
    if principal in ("super", "admin"):
        assert deleted == {"in", "out"}
    elif principal == "p1_super":
        assert deleted == {"in"}
    else:
        assert deleted == set()
        assert _verdict(response) == {"anonymous": "login", "member": 403}.get(principal, "ok")


def test_every_route_is_in_the_matrix(app):
    covered = {r.endpoint for r in ROUTES} | PUBLIC | set(SWITCHED_OFF) | {"member.action_view"}
    registered = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(registered - covered)
    assert not missing, f"routes without a row in the permission matrix: {missing}"
