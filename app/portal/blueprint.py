"""What the portal's pages share: the blueprint, the acting member, paging, times, and the no-membership page.

Page modules take these from here, never from the ``app.portal`` package
(which imports the modules to register their routes), so there is no import
cycle (tests/test_import_cycles.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask_login import current_user

from app.services import events as event_service
from app.services import self_service
from app.services.inputs import parse_page

bp = Blueprint("portal", __name__)

PER_PAGE = 10


def actor() -> Any:
    """The signed-in user as a plain object, for services and audit entries."""
    return current_user._get_current_object()  # type: ignore[attr-defined]


def page_arg(name: str = "page") -> int:
    """``?page=`` (from 1); 400 for anything that is not a page number."""
    raw = request.args.get(name, "")
    if not raw.strip():
        return 1
    page = parse_page(raw, 1)
    if page is None:
        abort(400)
    return page


def pages(total: int, page: int, per_page: int = PER_PAGE) -> dict[str, Any]:
    """What a pager needs: the page, the last page and whether there is a previous / next one."""
    last = max(1, -(-total // per_page))
    return {"page": page, "last": last, "prev": page > 1, "next": page < last, "total": total}


@bp.app_template_filter("portal_time")
def portal_time(value: datetime | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """A stored (UTC) time in the organisation's time zone."""
    return event_service.local(value).strftime(fmt) if value is not None else ""


@bp.app_context_processor
def portal_flags() -> dict[str, Any]:
    return {"has_membership": lambda: current_user.is_authenticated and self_service.has_membership(current_user)}


@bp.errorhandler(self_service.NoMembership)
def no_membership(_exc: self_service.NoMembership):
    """A page of "mine" for a login with no member record: say so, and where to go instead."""
    return render_template("portal/no_member.html"), 404
