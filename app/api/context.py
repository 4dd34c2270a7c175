"""What every API module shares: the blueprint, the URL prefix, the id range and the acting user.

API modules import these from here, never from the ``app.api`` package: the
package imports the modules to register their routes, so names taken back
from it would make an import cycle (issue 9; ``tests/test_import_cycles.py``).
"""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from app.models import User
from app.services.inputs import MAX_ID

__all__ = ["API_PREFIX", "MAX_ID", "actor", "bp", "is_api_path"]

API_PREFIX = "/api/v1"
# Routes are attached to this blueprint once, when their modules are first imported;
# ``app.api.init_api`` registers it on each app (tests create more than one).
bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def actor() -> User:
    """The authenticated user as a plain object, for services and audit entries."""
    return current_user._get_current_object()  # type: ignore[attr-defined]
