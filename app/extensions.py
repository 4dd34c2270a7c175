"""Flask extensions, created unbound so that create_app() can be called many times."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_principal import Principal
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints from the first migration on: Alembic cannot alter unnamed
# constraints on SQLite (batch mode needs the names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
principal = Principal(use_sessions=False)
csrf = CSRFProtect()
# Counts in RATELIMIT_STORAGE_URI: Redis when MUSTER_REDIS_URL is set (app/config.py), else per process.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
mail = Mail()  # outgoing mail; only app/services/mail/ sends through it
