"""Pending members: approve or turn down (``POST /members/{id}/approve`` and ``/reject``).

The API face of the console's "Pending approvals" (``app.admin.approvals``):
the same service (``app.services.joining``), the same right
(``members.update`` over the member's unit: 404 outside the caller's area,
403 inside it without the right) and the same answers: 409 when the member
is not pending, 422 for a missing reason. Each call commits once; the mail
(welcome, or the reason) is sent after that commit.
"""

from __future__ import annotations

from pydantic import Field

from app import models
from app.api.context import actor, bp
from app.api.members import Member
from app.api.schema import Body, Out, OutId, Text, Timestamp
from app.api.spec import operation
from app.extensions import db
from app.security import load_for
from app.services import joining


class Approval(Body):
    """Optional: a note kept in the member's status history ("Approved: ...")."""

    note: Text(joining.REASON_MAX) | None = None


class Rejection(Body):
    """Why the application is turned down: mailed to the person who applied."""

    reason: Text(joining.REASON_MAX, min_length=1) = Field(description="Sent to the person in the rejection mail.")


class Rejected(Out):
    """A turned-down application: withdrawn from the registry (no longer listed), its login switched off."""

    id: OutId
    membership_number: str
    rejection_reason: str
    rejected_at: Timestamp


def _pending(member_id: int) -> models.Member:
    return load_for(actor(), models.Member, member_id, joining.PERMISSION,
                    message="You may not approve or turn down this member.")


@bp.post("/members/<pk:member_id>/approve")
@operation("members", permission=joining.PERMISSION, responses={200: (Member, "The member, now active.")},
           errors=(404, 409), optional_body=True)
def approve_member(member_id: int, json: Approval):
    """Approve a pending member

    The member becomes active (their status history says "Approved", with the optional note) and is
    mailed a welcome. Needs
    members.update in the member's unit; 409 when the member is not pending.
    """
    member = joining.approve(actor(), _pending(member_id), json.note)
    db.session.commit()
    return Member.model_validate(member)


@bp.post("/members/<pk:member_id>/reject")
@operation("members", permission=joining.PERMISSION,
           responses={200: (Rejected, "The application, turned down.")}, errors=(404, 409))
def reject_member(member_id: int, json: Rejection):
    """Turn down a pending member

    With a reason, which is mailed to them. The application is withdrawn from the registry (it no
    longer appears in lists; someone with members.delete can restore it in the console) and its portal
    login is switched off. 409 when the member is not pending.
    """
    member = joining.reject(actor(), _pending(member_id), json.reason)
    db.session.commit()
    return Rejected(id=member.id, membership_number=member.membership_number,
                    rejection_reason=member.rejection_reason or "", rejected_at=member.deleted_at)
