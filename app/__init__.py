"""Application factory: a readable list of init_* calls."""

from __future__ import annotations

from flask import Flask

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
    init_queue(app)
    init_storage(app)
    init_blueprints(app)
    init_admin_console(app)
    init_request_checks(app)
    init_error_pages(app)
    init_headers(app)
    init_static_compression(app)
    init_proxy(app)
    init_cli(app)
    return app


def init_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (registers every table with the metadata)
    from app.database import ping_idle_connections, tune_sqlite
    from app.extensions import csrf, db, limiter, mail, migrate
    from app.identity import init_security

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    mail.init_app(app)
    init_security(app)
    with app.app_context():
        tune_sqlite(db.engine)
        ping_idle_connections(db.engine)


def init_queue(app: Flask) -> None:
    from app.queue import init_queue as init

    init(app)  # the task queue from MUSTER_QUEUE_URL; web processes only enqueue


def init_storage(app: Flask) -> None:
    from app.services.storage import init_storage as init

    init(app)  # the file storage from MUSTER_STORAGE_URL: instance/files/ or S3


def init_blueprints(app: Flask) -> None:
    from app.api import init_api
    from app.auth import bp as auth_bp
    from app.portal import bp as portal_bp
    from app.services.inputs import IdConverter
    from app.verify import bp as verify_bp
    from app.verify_index import bp as verify_index_bp

    app.url_map.converters["pk"] = IdConverter  # ids in every URL, before any rule is added
    app.register_blueprint(auth_bp)
    from app.accounts import bp as accounts_bp

    app.register_blueprint(accounts_bp)  # forgot / reset / activate / change password (issue #11)
    app.register_blueprint(portal_bp)
    app.register_blueprint(verify_bp)  # public card check (issue #4)
    app.register_blueprint(verify_index_bp)  # /verify/: type a card number or paste a code (issue #11)
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)  # POST /webhooks/stripe: dues paid online (issue 14)
    init_api(app)


def init_admin_console(app: Flask) -> None:
    from app.admin import init_admin

    init_admin(app)


def init_headers(app: Flask) -> None:
    from app.headers import init_headers as init

    init(app)


def init_static_compression(app: Flask) -> None:
    from app.static_compression import init_static_compression as init

    init(app)  # gzip for our CSS and scripts (the portal's page weight on phones); never for pages


def init_proxy(app: Flask) -> None:
    """Behind ``MUSTER_PROXY_HOPS`` reverse proxies, take the client's address from X-Forwarded-For.

    Lockouts and rate limits count per client address: without this, every
    client behind a proxy would share the proxy's address.
    """
    hops = app.config["PROXY_HOPS"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def init_request_checks(app: Flask) -> None:
    from app.request import init_request

    init_request(app)  # after every other before_request hook is registered (see init_request)


def init_error_pages(app: Flask) -> None:
    from app.errors import init_errors

    init_errors(app)


def init_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
