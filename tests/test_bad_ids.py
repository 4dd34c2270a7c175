"""Ids and page numbers of any size or form answer 4xx, never 500 (issue 8).

Every registered console (/admin/...) and API (/api/v1/...) route is walked
as a super admin and as a ward coordinator:

- each integer path converter in turn gets a hostile value, the others a
  real id (so a route with two ids is tested past its first lookup);
- each query argument (and, for POST, each form field) the view actually
  reads gets a hostile value. Which arguments a view reads is recorded while
  it answers a plain request (a ``Request`` whose argument dicts note every
  key looked up), so a new ``request.args.get`` in a view is probed without
  editing this file; Flask-Admin list views also get their filter arguments.

The spellings ``parse_id`` must refuse or accept are checked one by one in
tests/services/test_inputs.py; here each kind of hostile value is sent once.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from PIL import Image
from werkzeug.datastructures import ImmutableMultiDict

from app.extensions import db
from app.models import Job, Payment
from app.models.base import utcnow
from app.request import MusterRequest
from app.services import cards as card_service
from app.services import events as event_service
from app.services import jobs, rbac
from app.services import members as member_service
from app.services import storage
from tests.conftest import PASSWORD, build_staff, build_tree, csrf_token_from, login, new_user, wipe_tables

# Beyond 64 bits, 2**63, 2**31 (PostgreSQL's integer), negative, float, exponent,
# Arabic-Indic digits, empty, NUL, and more digits than a float can hold.
HOSTILE = ["99999999999999999999", "9223372036854775808", "2147483648", "-1", "4.0", "1e9",
           "\u0661\u0662", "", "\x00", "9" * 400]
# Arguments that are not numbers (search text, dates, choices) get a few values only: the suite stays quick.
HOSTILE_TEXT = ["99999999999999999999", "-1", "\x00", "9" * 400]
_NUMERIC_ARGS = {"id", "ids", "page", "page_size", "per_page", "unit", "parent", "sort", "desc", "capacity", "rowid"}


def _numeric(arg: str) -> bool:
    """Does this argument name an id or a number (or a filter on one: ``flt0_unit_in``)?"""
    return arg in _NUMERIC_ARGS or arg.endswith(("_id", "_ids")) or arg.startswith("flt0_unit")


# Values for path placeholders that are not ids.
NON_ID_SEGMENTS = {"fmt": "xlsx", "op": "suspend", "export_type": "csv", "name": "out.txt", "code": "ABCDEF"}
ID_CONVERTERS = ("IntegerConverter", "IdConverter")
PRINCIPALS = {"super": "super@test.org", "coordinator": "coord@test.org"}
_PLACEHOLDER = re.compile(r"<(?:([a-zA-Z_]+)(?:\([^)]*\))?:)?([a-zA-Z_]+)>")


class _RecordingArgs(ImmutableMultiDict):
    """Argument storage that notes every key a view looks up (request.args and request.form)."""

    seen: set[str] = set()

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def getlist(self, key, type=None):
        self.seen.add(key)
        return super().getlist(key, type=type)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


class _RecordingRequest(MusterRequest):
    parameter_storage_class = _RecordingArgs


def _member_requests(member) -> dict[str, int]:
    from app.models import ErasureRequest, MemberChangeRequest

    change = MemberChangeRequest(member=member, fields={"first_name": "Probe"},
                                 old_values={"first_name": member.first_name}, status="pending")
    erasure = ErasureRequest(member=member, status="pending")
    db.session.add_all([change, erasure])
    db.session.flush()
    return {"change_id": change.id, "erasure_id": erasure.id}


def _notification(member) -> int:
    from app.services import notifications

    return notifications.notify(member, "card.issued", "Probe").id


def _payment(member) -> int:
    from app.services import dues
    from app.services.dues import tiers

    tier = tiers.create_tier(None, {"name": "Probe tier", "price": "1", "currency": "ZMW", "duration_months": "1"})
    return dues.record_manual(None, member, {"tier_id": tier.id, "method": "cash"}).id


def _referral(member) -> int:
    from app.services import referrals

    return referrals.record_prospect(member, "Probe Person", "0977999111", None).id


@jobs.handler("bad_ids.noop")
def _noop_job(ctx):
    ctx.add_file("out.txt", "text/plain", b"done")
    return {}


def _build() -> dict[str, int]:
    """One real object of every kind a route names, in ward W1 (the coordinator's); committed by the caller."""
    from pathlib import Path

    from app.services import imports as import_service
    from app.services import mail

    tree = build_tree()
    staff = build_staff(tree)
    member = member_service.create_member(None, {"first_name": "Probe", "last_name": "Person",
                                                 "unit_id": tree["w1"].id, "status": "active"})
    photo = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(photo, "PNG")
    member_service.set_photo(None, member, photo.getvalue())
    card = card_service.issue_card(None, member)
    event = event_service.create_event(None, {
        "title": "Probe", "start_at": utcnow() - timedelta(hours=1), "end_at": utcnow() + timedelta(hours=2),
        "unit_id": tree["w1"].id, "status": "upcoming"})
    event_service.register(None, event, member)
    attachment = event_service.add_attachment(None, event, "agenda.pdf", b"%PDF-1.4\n%%EOF\n")
    other = new_user("other@test.org", "ward_coordinator", tree["w1"])
    role = rbac.create_role(None, "probe_role", "", ["members.read"])
    coordinator = staff["coordinator"]
    job = jobs.create_job(coordinator, "bad_ids.noop")
    message = mail.send_mail("test", "probe@example.org", {"sent_at": "now"}, member=member)
    with open(Path(__file__).resolve().parent / "data" / "members_utf8.csv", "rb") as fh:
        upload = import_service.save_upload(coordinator, fh, "members.csv")
    db.session.commit()
    jobs.run(job.id)
    ids = {
        "member_id": member.id, "card_id": card.id, "event_id": event.id, "attachment_id": attachment.id,
        "unit_id": tree["w1"].id, "user_id": other.id, "assignment_id": other.assignments[0].id,
        "role_id": role.id, "job_id": job.id, "file_id": db.session.get(Job, job.id).files[0].id,
        "upload_id": upload.id, "message_id": message.id,
        # a notification (issue 12: /api/v1/me/notifications/{id}/read); the probes' logins have no member: 404
        "notification_id": _notification(member),
        # a member's profile change and erasure requests (the console's request queues)
        **_member_requests(member),
        # a referral made by that member (issue 13): console and API referral pages
        "referral_id": _referral(member),
        # a receipted payment of that member (issue 14): receipts in the portal, the API and the console
        "payment_id": _payment(member),
    }
    ids["tier_id"] = db.session.get(Payment, ids["payment_id"]).tier_id
    ids["upload_key"] = upload.stored_name
    return ids


@pytest.fixture(scope="module")
def _committed_world(app):
    """The world, built and committed once for the module (some thousands of requests run against it).

    Each test still runs in the rolled-back outer transaction of tests/conftest.py, so what a probe changes
    (a deleted member, a discarded upload) is gone for the next; the rows are wiped when the module is done.
    """
    with app.app_context():
        built = _build()
        db.session.commit()
        db.session.remove()
        yield built
        storage.delete(built["upload_key"])
        wipe_tables()


@pytest.fixture()
def world(app, _committed_world, monkeypatch):
    monkeypatch.setattr(app, "request_class", _RecordingRequest)
    # Errors answer 500 as in production instead of reaching the test as exceptions.
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    return _committed_world


def _probed_rules(app) -> list[tuple[str, str]]:
    """(endpoint, method) for every console and API route."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/admin", "/api/v1")) or rule.endpoint.endswith("static"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((rule.endpoint, method))
    return sorted(found)


def _rule(app, endpoint: str, method: str):
    return next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint and method in r.methods)


def _path(rule, ids: dict[str, int], hostile: tuple[str, str] | None = None) -> str:
    def fill(match):
        name = match.group(2)
        if hostile and name == hostile[0]:
            return quote(hostile[1], safe="")
        return str(ids[name]) if name in ids else NON_ID_SEGMENTS[name]

    return _PLACEHOLDER.sub(fill, rule.rule)


class Caller:
    """Sends requests as one principal (session for the console, bearer token for the API)."""

    def __init__(self, client, email: str) -> None:
        self.client = client
        login(client, email)
        response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        self.token = response.get_json()["token"]
        self.csrf = csrf_token_from(client.get("/login").get_data(as_text=True))

    def send(self, method: str, path: str, args: dict | None = None, form: dict | None = None):
        _RecordingArgs.seen = set()
        if path.startswith("/api/"):
            return self.client.open(path, method=method, query_string=args,
                                    headers={"Authorization": f"Bearer {self.token}"},
                                    json={} if method in ("POST", "PUT") else None)
        data = None
        if method == "POST":
            data = {"csrf_token": self.csrf, **(form or {})}
        return self.client.open(path, method=method, query_string=args, data=data)


def _problem(response, what: str) -> str | None:
    """Why this answer is wrong (a server error, or an API error that is not JSON), or None."""
    response.get_data()  # streamed answers (exports) run to the end, as a browser would read them
    response.close()
    if response.status_code >= 500:
        return f"{what}: {response.status_code}"
    if what.split()[1].startswith("/api/") and response.status_code >= 400:
        body = response.get_json(silent=True)
        if not (isinstance(body, dict) and "error" in body):
            return f"{what}: {response.status_code} is not a JSON error"
    return None


def _list_filter_args(app, endpoint: str) -> list[str]:
    """The query argument names of a Flask-Admin list view's filters (flt0_<index>)."""
    view = next((v for v in app.extensions["admin"][0]._views if v.endpoint == endpoint.split(".")[0]), None)
    if view is None or not getattr(view, "_filter_args", None) or not endpoint.endswith(".index_view"):
        return []
    return [f"flt0_{arg}" for arg in sorted(view._filter_args)]


def _routes_at_collection() -> list[tuple[str, str]]:
    """The routes, read from an app built for the purpose (fixtures do not exist at collection time)."""
    from app import create_app
    from app.config import TestConfig

    return _probed_rules(create_app(TestConfig("sqlite://")))


@pytest.mark.parametrize("principal", sorted(PRINCIPALS))
@pytest.mark.parametrize("endpoint,method", _routes_at_collection())
def test_hostile_ids_never_500(app, client, world, endpoint, method, principal):
    rule = _rule(app, endpoint, method)
    caller = Caller(client, PRINCIPALS[principal])
    db.session.commit()
    problems: list[str | None] = []
    id_names = [name for name, conv in rule._converters.items() if type(conv).__name__ in ID_CONVERTERS]
    for name in id_names:
        for value in HOSTILE:
            path = _path(rule, world, (name, value))
            problems.append(_problem(caller.send(method, path), f"{method} {path}"))

    # A plain request records what the view reads; then each of those gets every hostile value.
    path = _path(rule, world)
    problems.append(_problem(caller.send(method, path), f"{method} {path}"))
    read = sorted((_RecordingArgs.seen - {"csrf_token"}) | set(_list_filter_args(app, endpoint)))
    for arg in read:
        for value in HOSTILE if _numeric(arg) else HOSTILE_TEXT:
            if method == "GET" or path.startswith("/api/"):
                response = caller.send(method, path, args={arg: value})
            else:
                response = caller.send(method, path, form={arg: value})
            problems.append(_problem(response, f"{method} {path} {arg}={value!r}"))
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
