"""Shared fixtures, as in flaskr: ``app``, ``client``, ``runner`` and ``make_*`` factories.

The schema is built once per run by the real migrations (``flask db upgrade``)
on SQLite, or on PostgreSQL when TEST_DATABASE_URL is set. Each test runs
inside an outer transaction that is rolled back afterwards (the recipe from
flask-sqlalchemy issue 1171), so tests stay independent and fast. Tests that
need real commits across connections (concurrency, browser) use the
``committing_app`` fixture instead.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

# Before the app is imported: its instance folder (generated keys, job files,
# uploads) must be a throwaway one, never the developer's instance/.
os.environ.setdefault("MUSTER_INSTANCE_DIR", tempfile.mkdtemp(prefix="muster-test-instance-"))

import pytest  # noqa: E402
from flask import g, has_app_context  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from app import create_app  # noqa: E402
from app.config import TestConfig  # noqa: E402
from app.extensions import db, limiter  # noqa: E402
from app.models import Member, Unit, User  # noqa: E402
from app.services import geo, rbac  # noqa: E402
from app.services.auth import hash_password  # noqa: E402

PASSWORD = "correct-horse-battery"
# Fixtures for every test module: the real SMTP server (aiosmtpd: smtp_server, smtp_mail) and the
# file storage (moto_server, s3_storage, local_storage, any_storage).
pytest_plugins = ["tests.mailserver", "tests.storage_fixtures"]


def _database_url(tmp_dir: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set", pytrace=False)
    return f"sqlite:///{tmp_dir / 'test.db'}"


def reset_schema(app) -> None:
    """Drop everything and build the schema from the migrations."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(revision="heads")
        rbac.ensure_catalogue()
        db.session.commit()


class FreshRequestClient(FlaskClient):
    """A test client whose every request starts with an empty ``g``, as in production.

    Tests keep an app context pushed (for factories and the session), and
    Flask reuses it for requests, so ``g`` (the logged-in user, the CSRF token,
    cached grants) would otherwise leak from one request, or client, to the next.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            g.__dict__.clear()
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return _database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    application = create_app(TestConfig(database_url))
    application.test_client_class = FreshRequestClient
    reset_schema(application)
    # Sessions join each test's outer transaction through savepoints, so code
    # under test may commit or roll back freely.
    db.session.session_factory.configure(join_transaction_mode="create_savepoint")
    return application


@pytest.fixture(autouse=True)
def _transaction(request, app):
    """Run each test in a rolled-back transaction (skipped for committing tests)."""
    if "committing_app" in request.fixturenames:
        yield
        return
    with app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        outer = connection.begin()
        engines[None] = connection
        limiter.reset()
        try:
            yield
        finally:
            db.session.remove()
            outer.rollback()
            connection.close()
            engines[None] = engine


@pytest.fixture()
def committing_app(app):
    """The app with real commits; the data it leaves is wiped afterwards.

    Factories used alongside it only flush: the test commits what other
    connections (a server thread, parallel workers) must see.
    """
    limiter.reset()
    with app.app_context():
        yield app
        wipe_tables()


def wipe_tables() -> None:
    """Delete every committed row and restore the permission catalogue (as after reset_schema)."""
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # members and users refer to each other
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    rbac.ensure_catalogue()
    db.session.commit()


@pytest.fixture()
def live_server(committing_app):
    """Muster on a real threaded HTTP server (werkzeug) on 127.0.0.1 for one test; yields its base URL."""
    server = make_server("127.0.0.1", 0, committing_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def ctx(app):
    """An application context for calling services directly."""
    with app.app_context():
        yield


# --- factories ------------------------------------------------------------------------


@pytest.fixture()
def make_unit(app):
    counter = {"n": 0}

    def make(name: str | None = None, parent: Unit | None = None, code: str | None = None) -> Unit:
        counter["n"] += 1
        return geo.create_unit(None, name or f"Unit {counter['n']}", code or f"U{counter['n']}", parent)

    return make


def build_tree() -> dict[str, Unit]:
    """A small geography: two provinces; the first has two wards in one constituency.

    P1 > D1 > C1 > W1, W2 ;  P1 > D2 > C2 > W3 ;  P2 > D3 > C3 > W4
    """
    made: dict[str, Unit] = {}
    for key, name, parent in (("p1", "Northern", None), ("d1", "Kasama", "p1"), ("c1", "Lukashya", "d1"),
                              ("w1", "Lukashya Ward 1", "c1"), ("w2", "Lukashya Ward 2", "c1"),
                              ("d2", "Mbala", "p1"), ("c2", "Lunte", "d2"), ("w3", "Lunte Ward 1", "c2"),
                              ("p2", "Highlands", None), ("d3", "Chipata", "p2"), ("c3", "Luangeni", "d3"),
                              ("w4", "Luangeni Ward 1", "c3")):
        made[key] = geo.create_unit(None, name, key.upper(), made[parent] if parent else None)
    db.session.flush()
    return made


@pytest.fixture()
def tree(app):
    """``build_tree``: P1 > D1 > C1 > W1, W2 ;  P1 > D2 > C2 > W3 ;  P2 > D3 > C3 > W4."""
    return build_tree()


def new_user(email: str, role: str | None = None, unit: Unit | None = None, member: Member | None = None,
             password: str = PASSWORD) -> User:
    """A login with the password ``PASSWORD`` and, given ``role``, that role (at ``unit``; None: everywhere)."""
    user = User(email=email, password_hash=hash_password(password), member=member)
    db.session.add(user)
    db.session.flush()
    if role:
        rbac.assign_role(None, user, rbac.role_by_name(role), unit)
    return user


@pytest.fixture()
def make_user(app):
    return new_user


@pytest.fixture()
def make_member(app):
    from app.services import members

    counter = {"n": 0}

    def make(unit: Unit, **fields) -> Member:
        counter["n"] += 1
        n = counter["n"]
        data = {"first_name": f"First{n}", "last_name": f"Last{n}", "unit_id": unit.id, "status": "active"}
        data.update(fields)
        return members.create_member(None, data)

    return make


def build_staff(tree: dict[str, Unit]) -> dict[str, User]:
    """One user per seed role: super admin, global admin, coordinator of W1, plain member."""
    return {
        "super_admin": new_user("super@test.org", "super_admin"),
        "admin": new_user("admin@test.org", "admin"),
        "coordinator": new_user("coord@test.org", "ward_coordinator", tree["w1"]),
        "member": new_user("member@test.org", "member"),
    }


@pytest.fixture()
def staff(tree):
    """``build_staff``: super admin, global admin, coordinator of W1, plain member."""
    return build_staff(tree)


# --- HTTP helpers ---------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str = PASSWORD):
    """Log in through the real form, CSRF token included; returns the response."""
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def api_token(client, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]
