"""The permission matrix: every console and API (route, method), for every principal, on every side.

The table is ``routes.ROWS``, the principals and the rule ``rules.py``, the
objects ``conftest.world``. ``test_every_route_and_method_has_a_row`` fails
when a (rule, method) pair of the URL map has no row, so neither a new route
nor a new method on an old one escapes the matrix.
"""

from __future__ import annotations

import pytest
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.models import AuditEntry, Member
from tests.permission_matrix.calls import (
    Caller, add_invitations, add_jobs, add_notifications, add_payments, add_uploads, verdict,
)
from tests.permission_matrix.routes import BULK, EXCLUDED_BLUEPRINTS, EXCLUDED_ENDPOINTS, PUBLIC, ROWS, SWITCHED_OFF
from tests.permission_matrix.rules import PRINCIPALS, expected, sides


@pytest.mark.parametrize("principal", list(PRINCIPALS))
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.endpoint}:{r.method}")
def test_matrix(client, world, tokens, principal, row):
    caller = Caller(client, principal, tokens.get(principal))
    if row.obj in ("job", "api_job"):
        add_jobs(world, principal)
    if row.obj == "upload":
        add_uploads(world, principal)
    if "{my_notification}" in row.path:
        add_notifications(world, principal)
    if "{my_invitation}" in row.path:
        add_invitations(world, principal)
    if "{my_payment}" in row.path:
        add_payments(world, principal)
    wrong = []
    for side in sides(row.obj):
        response = caller.call(row, world[side])
        want, got = expected(principal, row, side), verdict(response, row)
        if got != want:
            wrong.append(f"{side}: expected {want}, got {response.status_code} "
                         f"{response.get_data()[:200].decode(errors='replace')!r}")
    assert not wrong, f"{principal} {row.method} {row.path}\n" + "\n".join(wrong)


@pytest.mark.parametrize("principal", list(PRINCIPALS))
@pytest.mark.parametrize("key", sorted(SWITCHED_OFF), ids=lambda k: f"{k[0]}:{k[1]}")
def test_switched_off_routes_never_act(client, world, principal, key):
    """Flask-Admin's unused routes refuse or bounce, and change nothing."""
    caller = Caller(client, principal)
    caller.sign_in()
    method, path = key[1], SWITCHED_OFF[key].format(**world["out"])
    data = {"action": "delete", "rowid": [str(world[s]["member"]) for s in world], "id": str(world["out"]["entry"])}
    if method == "POST":
        data["csrf_token"] = caller.csrf()
    response = client.open(path, method=method, data=data if method == "POST" else None)
    assert response.status_code in (302, 400, 403, 404, 405), response.status_code
    db.session.expire_all()
    assert all(db.session.get(Member, world[s]["member"]).deleted_at is None for s in world)
    assert db.session.get(AuditEntry, world["out"]["entry"]) is not None


BULK_DELETES = {"super": {"in", "near", "out"}, "admin": {"in", "near", "out"}, "p1_super": {"in", "near"}}


@pytest.mark.parametrize("principal", list(PRINCIPALS))
def test_bulk_delete_only_touches_rows_in_scope(client, world, principal):
    """member.action_view: the list's bulk delete ignores ids outside the user's members.delete scope."""
    caller = Caller(client, principal)
    caller.sign_in()
    ids = [str(world[side]["member"]) for side in world]
    response = client.post(BULK.path,
                           data={"action": "delete", "rowid": ids, "csrf_token": caller.csrf()})
    db.session.expire_all()
    deleted = {side for side in world if db.session.get(Member, world[side]["member"]).deleted_at}
    assert deleted == BULK_DELETES.get(principal, set())
    if principal not in BULK_DELETES:
        assert verdict(response, BULK) == {"anonymous": "login", "member": 403}.get(principal, "ok")


class _AnyId(dict):
    def __missing__(self, key: str) -> str:
        return "1"


def _covered_pairs(app) -> set[tuple[str, str]]:
    """The (rule, method) each row and switched-off route actually reaches."""
    adapter = app.url_map.bind("localhost")
    paths = [(row.method, row.path) for row in [*ROWS, BULK]] + [(m, p) for (_e, m), p in SWITCHED_OFF.items()]
    covered = set()
    for method, path in paths:
        try:
            rule, _args = adapter.match(path.split("?")[0].format_map(_AnyId()), method=method, return_rule=True)
        except HTTPException as exc:
            raise AssertionError(f"{method} {path} matches no route ({exc})") from None
        covered.add((rule.rule, method))
    return covered


def test_every_route_and_method_has_a_row(app):
    keys = [row.key for row in ROWS]
    assert len(keys) == len(set(keys)), "two rows for the same (endpoint, method)"
    listed = set(keys) | PUBLIC | set(SWITCHED_OFF) | {BULK.key}
    covered = _covered_pairs(app)
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in EXCLUDED_ENDPOINTS or rule.endpoint.split(".")[0] in EXCLUDED_BLUEPRINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (rule.endpoint, method) not in listed:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
            elif (rule.endpoint, method) not in PUBLIC and (rule.rule, method) not in covered:
                missing.append(f"{method} {rule.rule} ({rule.endpoint}): its row's path reaches another route")
    assert not missing, "routes without a row in the permission matrix:\n" + "\n".join(missing)
