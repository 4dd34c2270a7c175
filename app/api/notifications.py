"""The signed-in member's notifications under /api/v1: ``GET /me/notifications``, ``POST /me/notifications/{id}/read``.

The same notifications as the portal's bell (``app.services.notifications``),
always the caller's own: ``self_service.own_member`` finds their member record
(404 for a login without one, as every ``/me`` path), and a notification id
of another member's answers 404, as if it did not exist.
"""

from __future__ import annotations

from pydantic import Field

from app import models
from app.api.context import actor, bp
from app.api.schema import (
    Body,
    Count,
    Out,
    OutId,
    Page,
    PageQuery,
    QueryChoice,
    Timestamp,
)
from app.api.serialize import page_of
from app.api.spec import operation
from app.extensions import db
from app.services import notifications as notes
from app.services import self_service


class Notification(Out):
    """One notification: what happened, when, and where to look."""

    id: OutId
    kind: str = Field(description="What it is about, e.g. card.issued, request.decided, reminder.renewal.")
    title: str
    message: str
    link: str | None = Field(description="A portal path or an absolute URL on this site; null when none.")
    read: bool
    read_at: Timestamp | None
    created_at: Timestamp

    @classmethod
    def of(cls, note: models.Notification) -> Notification:
        return cls.model_validate({**{key: getattr(note, key) for key in cls.model_fields if key != "read"},
                                   "read": note.read_at is not None})


class NotificationPage(Page):
    items: list[Notification]
    unread: Count = Field(description="How many of your notifications are unread (all pages).")


class ReadMark(Body):
    """Nothing to send: the path says which notification (an empty object or no body at all)."""


class NotificationQuery(PageQuery):
    unread: QueryChoice(("true", "false")) = Field("false", description="true: only unread ones.")


@bp.get("/me/notifications")
@operation("me", responses={200: (NotificationPage, "A page of your notifications, newest first.")},
           errors=(400, 403, 404))
def my_notifications(query: NotificationQuery):
    """Your notifications

    Newest first; unread=true for the unread ones only. Needs profile.read_own.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    member = self_service.own_member(actor(), "profile.read_own")
    found, total = notes.page(member, query.offset, query.per_page, unread_only=query.unread == "true")
    items = [Notification.of(n) for n in found]
    page = page_of(items, query.page, query.per_page, total, "api.my_notifications",
                   unread="true" if query.unread == "true" else None)
    return {**page, "unread": notes.unread_count(member)}


@bp.post("/me/notifications/<pk:notification_id>/read")
@operation("me", responses={200: (Notification, "The notification, now read.")}, errors=(403, 404),
           optional_body=True)
def read_notification(notification_id: int, json: ReadMark):
    """Mark a notification read

    Marking it again changes nothing (read_at stays the first time). Needs profile.update_own.
    404 for an id that is not one of your notifications.
    """
    member = self_service.own_member(actor(), "profile.update_own")
    note = notes.mark_read(notes.load_own(member, notification_id))
    db.session.commit()
    return Notification.of(note)
