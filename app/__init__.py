"""Application factory: a readable list of init_* calls."""

from __future__ import annotations

from flask import Flask, has_request_context, request

from app.config import BASE_DIR, INSTANCE_DIR, Config


def create_app(config: object | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        instance_path=str(INSTANCE_DIR),
        instance_relative_config=True,
    )
    app.config.from_object(config or Config())

    init_extensions(app)
    init_blueprints(app)
    init_admin_console(app)
    init_error_pages(app)
    init_cli(app)
    return app


def init_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (registers every table with the metadata)
    from app.extensions import csrf, db, limiter, migrate
    from app.security import init_security

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    init_security(app)
    with app.app_context():
        _tune_sqlite(db.engine)


def _tune_sqlite(engine) -> None:
    """Make SQLite behave like a server database: real transactions, savepoints, foreign keys.

    pysqlite opens transactions lazily and breaks SAVEPOINT; the documented
    SQLAlchemy recipe takes over BEGIN. WAL lets the web server read while a
    long import or job writes.

    SQLite cannot turn a transaction that has read into one that writes while
    another connection writes (it answers "database is locked" at once, no
    waiting). So requests that change things (POST, PUT, PATCH, DELETE) take
    the write lock up front with BEGIN IMMEDIATE and queue behind other
    writers (busy_timeout); reading requests start deferred, so long reads
    such as exports never hold writers up. Jobs and commands outside a
    request write in short transactions of their own.
    """
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        writing = has_request_context() and request.method in ("POST", "PUT", "PATCH", "DELETE")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def init_blueprints(app: Flask) -> None:
    from app.api import init_api
    from app.auth import bp as auth_bp
    from app.portal import bp as portal_bp
    from app.verify import bp as verify_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(verify_bp)  # public card check (issue #4)
    init_api(app)


def init_admin_console(app: Flask) -> None:
    from app.admin import init_admin

    init_admin(app)


def init_error_pages(app: Flask) -> None:
    from app.errors import init_errors

    init_errors(app)


def init_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
