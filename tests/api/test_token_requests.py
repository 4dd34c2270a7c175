"""What a bearer-token request reads: the token, its user and the user's grants, in one statement.

The door's check-in runs this on every scan (``bench/checkin.py``), so it
reads nothing else: no session cookie (an API request gets Flask's null
session) and no separate grants query. Grants are still live: a role taken
away, or run out, counts from the very next request with the same token.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, event, select

from app.extensions import db
from app.models import RoleAssignment
from app.models.base import utcnow
from tests.api.conftest import assert_error
from tests.conftest import login


def test_an_api_answer_neither_reads_nor_refreshes_the_console_session(client, api, staff):
    db.session.commit()
    assert login(client, "super@test.org").status_code == 302
    coord = api.login("coord@test.org")

    response = coord.get("/members")

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers  # the console's session is not re-sent nor extended
    assert "Cookie" not in response.headers.get("Vary", "")
    assert client.get("/admin/").status_code == 200  # and it still works for the console


def test_a_role_taken_away_counts_from_the_next_request(api, staff):
    coord = api.login("coord@test.org")
    assert coord.get("/members").status_code == 200

    db.session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == staff["coordinator"].id))
    db.session.flush()

    assert_error(coord.get("/members"), 403)


def test_a_role_that_ran_out_counts_from_the_next_request(api, staff):
    coord = api.login("coord@test.org")
    assert coord.get("/members").status_code == 200

    for assignment in db.session.scalars(select(RoleAssignment).where(
            RoleAssignment.user_id == staff["coordinator"].id)):
        assignment.expires_at = utcnow() - timedelta(seconds=1)
    db.session.flush()

    assert_error(coord.get("/members"), 403)


def test_the_token_user_and_grants_are_one_query(app, api, staff):
    coord = api.login("coord@test.org")
    coord.get("/members")  # the token's first use writes last_used_at; later ones within the minute do not
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert coord.get("/members?per_page=1").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)

    touching = [s for s in statements if "api_tokens" in s or "role_assignments" in s]
    assert len(touching) == 1, touching
