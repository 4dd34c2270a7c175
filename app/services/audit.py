"""Recording staff actions in the audit log.

The request's IP address and user agent are picked up here when there is a
request, rather than threaded through every service: they describe where the
action came from, not what it does, and jobs and CLI commands have none.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import has_request_context, request

from app.extensions import db
from app.models import AuditEntry
from app.models.base import utcnow


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields whose value changed, as {field: {"before": old, "after": new}}."""
    return {
        key: {"before": _jsonable(before.get(key)), "after": _jsonable(after.get(key))}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def record(
    actor: Any,
    action: str,
    obj: Any = None,
    *,
    summary: str = "",
    changes: dict[str, Any] | None = None,
    unit_id: int | None = None,
) -> AuditEntry:
    """Add one audit entry. ``unit_id`` defaults to the object's own unit for scoping."""
    if unit_id is None and obj is not None:
        unit_id = getattr(obj, "unit_id", None)
        if unit_id is None and obj.__class__.__name__ == "Unit":
            unit_id = obj.id
    entry = AuditEntry(
        actor_id=getattr(actor, "id", None),
        action=action,
        object_type=obj.__class__.__name__ if obj is not None else None,
        object_id=str(obj.id) if obj is not None and getattr(obj, "id", None) is not None else None,
        unit_id=unit_id,
        summary=summary,
        changes={k: _jsonable(v) for k, v in changes.items()} if changes else None,
    )
    if has_request_context():
        entry.ip = request.remote_addr
        entry.user_agent = (request.user_agent.string or "")[:255]
    db.session.add(entry)
    db.session.flush()
    return entry


def record_many(actor: Any, entries: list[dict[str, Any]]) -> None:
    """Add many audit entries in one executemany (bulk imports): ``record``'s fields, without ORM objects.

    Each entry gives ``action``, ``object_type``, ``object_id``, ``unit_id``,
    ``summary`` and ``changes``; the time, actor, IP and user agent are added here.
    """
    if not entries:
        return
    ip = user_agent = None
    if has_request_context():
        ip, user_agent = request.remote_addr, (request.user_agent.string or "")[:255]
    now = utcnow()
    rows = [{"at": now, "actor_id": getattr(actor, "id", None), "ip": ip, "user_agent": user_agent,
             **entry, "summary": (entry.get("summary") or "")[:500],
             "changes": {k: _jsonable(v) for k, v in entry["changes"].items()} if entry.get("changes") else None}
            for entry in entries]
    db.session.execute(AuditEntry.__table__.insert(), rows)
