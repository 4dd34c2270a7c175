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
