"""The Alembic history builds exactly the models: no autogenerate diff after upgrade."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_upgrade_yields_exactly_the_models(app):
    # The session schema was built by `flask db upgrade` (see conftest.reset_schema).
    with app.app_context():
        context = MigrationContext.configure(db.session.connection(),
                                             opts={"compare_type": True, "render_as_batch": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_upgrade_and_downgrade_on_an_empty_database(tmp_path, monkeypatch):
    """`flask db upgrade` on a new database, then all the way down, then up again."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from app import create_app
    from app.config import TestConfig

    fresh = create_app(TestConfig(f"sqlite:///{tmp_path / 'fresh.db'}"))
    with fresh.app_context():
        upgrade(revision="heads")
        assert {"members", "units", "users", "roles", "audit_entries"} <= set(inspect(db.engine).get_table_names())
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(revision="heads")
        assert "members" in inspect(db.engine).get_table_names()


def test_upgrade_keeps_existing_data_on_sqlite(tmp_path):
    """An organisation upgrading keeps every row: tables rebuilt by batch migrations are referenced by others."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.config import TestConfig

    older = create_app(TestConfig(f"sqlite:///{tmp_path / 'older.db'}"))
    with older.app_context():
        upgrade(revision="0005")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO units (id, name, code, level, path, created_at) VALUES (1, 'North', 'N', 0, '/1/',"
                                 " '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO members (id, membership_number, first_name, last_name, surname_key, status, unit_id,"
                " joined_on, created_at, updated_at) VALUES (1, 'M0000001', 'Ada', 'Banda', 'banda', 'active', 1,"
                " '2026-01-01', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO users (id, email, password_hash, active, failed_logins, member_id, created_at)"
                " VALUES (1, 'ada@test.org', 'x', 1, 0, 1, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO audit_entries (action, actor_id, object_type, object_id, summary, at)"
                " VALUES ('member.create', 1, 'Member', '1', 'Registered', '2026-01-01 00:00:00')"))
        upgrade(revision="heads")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT email, member_id FROM users")).all() == [("ada@test.org", 1)]
            assert conn.execute(text("SELECT session_token FROM users")).scalar()
            assert conn.execute(text("SELECT first_name_key FROM members")).scalar() == "ada"
            assert conn.execute(text("SELECT count(*) FROM audit_entries WHERE actor_id = 1")).scalar() == 1
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
