"""The member's own profile: contact details, a new email address (confirmed by mail), the photo, "my data".

One path for both faces: the portal's profile page and ``PATCH /api/v1/me``
call ``update_contact``, so the rules cannot drift apart.

- *Phone and address* change at once, checked by the member registry's rules
  (``self_service.clean_contact``: every field at fault at once); a phone
  another member has is refused without saying whose (409).
- *Email*: a new address has to prove it reaches the member before it
  replaces the one on record, or a typo (or someone with the member's
  session for a minute) would send their mail elsewhere for good. The new
  address gets a one-time link (``links`` purpose ``change-email``, data
  ``{"email": new}``, ``MUSTER_VERIFY_EMAIL_HOURS``); only following it changes
  the address (``confirm_email``). Until then the profile shows it as
  pending. A newer request replaces the older link. Clearing the address
  (null) needs no proof and happens at once. The login's own address does
  not follow: signing in is the accounts' business.
- *Photo*: the console's checks (``member_photos.set_photo``: JPEG or PNG by
  content, re-encoded, size limits), with ``profile.update_own``.
- *My data* (``my_data``): everything held about the member that they may
  know, as one JSON-ready dict (staff notes are internal and left out).

Every function takes the actor and acts on their own member record only
(``self_service.own_member``). Services flush; the caller commits once.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import (
    CardTransaction,
    ErasureRequest,
    Event,
    EventCheckin,
    EventRegistration,
    Member,
    MemberChangeRequest,
    MembershipCard,
    OneTimeLink,
    User,
)
from app.models.base import utcnow
from app.services import audit, links, mail, member_photos, self_service
from app.services import members as member_service
from app.services.errors import DuplicateError, ServiceError

EMAIL_PURPOSE = "change-email"
EMAIL_CHANGE_HOURS = 48
EMAIL_TAKEN = ("This email address is already used by another member's record, so it cannot be yours here. "
               "Contact your ward's coordinators if it is yours.")


# --- contact details ----------------------------------------------------------------------


def update_contact(actor: Any, data: dict[str, Any]) -> Member:
    """Change the actor's phone and address at once; a new email is mailed a confirmation link instead.

    Every field is checked before anything changes (all messages at once);
    duplicates of another member's phone or email are refused (409) without
    naming who holds them. The audit log records what changed.
    """
    member = self_service.own_member(actor, "profile.update_own")
    values = self_service.clean_contact(data)
    new_email = None
    if "email" in values and values["email"] == member.email:
        values.pop("email")  # the address on record: nothing to do
    elif values.get("email") is not None:
        new_email = values.pop("email")  # changes only once its link is followed; None (clear) stays
    member_service.check_duplicates(actor, national_id=None, phone=values.get("phone"), email=new_email,
                                    exclude_id=member.id)
    before = {key: getattr(member, key) for key in values}
    for key, value in values.items():
        setattr(member, key, value)
    if values:
        member.updated_by_id = getattr(actor, "id", None)
    db.session.flush()
    changes = audit.diff(before, {key: getattr(member, key) for key in values})
    if changes:
        audit.record(actor, "member.update", member, summary=f"{member.full_name} updated their contact details",
                     changes=changes)
    if new_email is not None:
        request_email_change(actor, member, new_email)
    return member


def request_email_change(actor: Any, member: Member, new_email: str) -> OneTimeLink:
    """Mail ``new_email`` a link that makes it the member's address (an earlier pending link stops working)."""
    hours = float(current_app.config.get("VERIFY_EMAIL_HOURS", EMAIL_CHANGE_HOURS))
    token = links.issue(EMAIL_PURPOSE, member=member, hours=hours, data={"email": new_email})
    link = links.check(EMAIL_PURPOSE, token)  # the row just added (from the session, no query)
    mail.send_mail("profile.email-change", new_email,
                   {"link": mail.link_to("portal.confirm_email", token=token), "hours": int(hours),
                    "new_email": new_email},
                   member=member, actor=actor if isinstance(actor, User) else None,
                   key=f"profile.email-change:{link.id}", sensitive=True)
    audit.record(actor, "member.email_change", member, summary=f"{member.full_name} asked to change their email; "
                                                               "a confirmation link was sent to the new address")
    return link


def pending_email(member: Member) -> str | None:
    """The new address waiting for its link to be followed (the latest live ``change-email`` link), or None."""
    link = db.session.scalars(
        select(OneTimeLink).where(OneTimeLink.member_id == member.id, OneTimeLink.purpose == EMAIL_PURPOSE,
                                  OneTimeLink.used_at.is_(None), OneTimeLink.expires_at > utcnow())
        .order_by(OneTimeLink.id.desc()).limit(1)).first()
    email = (link.data or {}).get("email") if link is not None else None
    return email if email and email != member.email else None


def email_link(token: str | None) -> tuple[OneTimeLink, Member, str | None]:
    """The link a confirmation token names, its member and the address it confirms (raises ``LinkError``)."""
    link = links.check(EMAIL_PURPOSE, token)
    member = link.member
    if member is None or member.deleted_at is not None:
        raise links.LinkInvalid("This link is no longer valid: the membership record it was for is gone.")
    return link, member, (link.data or {}).get("email")


def confirm_email(token: str | None) -> Member:
    """Follow a confirmation link: the address it carries becomes the member's (once; no sign-in needed).

    The link itself is the proof (it reached that mailbox). An address taken
    by another member since is refused, naming nobody; the caller rolls back,
    so the link stays usable once the clash is sorted out.
    """
    _link, member, email = email_link(token)
    links.redeem(EMAIL_PURPOSE, token)
    user = db.session.scalar(select(User).where(User.member_id == member.id).limit(1))
    if email and email != member.email:
        try:
            member_service.check_duplicates(user, national_id=None, phone=None, email=email, exclude_id=member.id)
        except DuplicateError:
            raise ServiceError(EMAIL_TAKEN, field="email", status=409) from None
        before = member.email
        member.email = email
        db.session.flush()
        audit.record(user, "member.email_confirmed", member, summary=f"{member.full_name} confirmed a new email address",
                     changes={"email": {"before": before, "after": email}})
    if hasattr(member, "email_verified_at"):  # the join flow's column, when it exists
        member.email_verified_at = utcnow()
        db.session.flush()
    return member


# --- photo ---------------------------------------------------------------------------------


def set_own_photo(actor: Any, raw: bytes) -> Member:
    """Replace the actor's photo, with the console's content checks (JPEG or PNG, re-encoded)."""
    member = self_service.own_member(actor, "profile.update_own")
    member_photos.set_photo(actor, member, raw, permission="profile.update_own")
    return member


def remove_own_photo(actor: Any) -> Member:
    member = self_service.own_member(actor, "profile.update_own")
    member_photos.remove_photo(actor, member, permission="profile.update_own")
    return member


def photo_data_uri(member: Member) -> str | None:
    """The member's photo as a ``data:`` URI for their own page (no URL that could name another member)."""
    found = member_photos.photo_bytes(member.id)
    if found is None:
        return None
    content, content_type = found
    return f"data:{content_type};base64,{base64.b64encode(content).decode()}"


# --- my data -------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def _row(obj: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: _iso(getattr(obj, key)) for key in keys}


PROFILE_KEYS = ("membership_number", "first_name", "last_name", "other_names", "gender", "date_of_birth",
                "national_id", "phone", "email", "address", "status", "joined_on", "created_at", "updated_at")
CONSENT_KEYS = ("consent_at", "consent_version", "email_verified_at")


def profile_of(member: Member) -> dict[str, Any]:
    """The member's own fields, their unit (with its level's name) and tags, JSON-ready."""
    unit = member.unit
    return {**_row(member, PROFILE_KEYS),
            "unit": {"name": unit.name, "code": unit.code, "level": unit.level_name},
            "tags": [t.name for t in member.tags]}


def my_data(actor: Any) -> dict[str, Any]:
    """Everything kept about the actor as a member, for "Download my data" (JSON-ready).

    Profile, consents (the join flow's fields, when present), photo, status
    history, cards with their transactions, event registrations, check-ins,
    change and erasure requests. Staff notes are internal and left out.
    """
    member = self_service.own_member(actor)
    photo = member_photos.photo_bytes(member.id)
    cards = list(db.session.scalars(select(MembershipCard).where(MembershipCard.member_id == member.id)
                                    .order_by(MembershipCard.id)))
    card_rows = []
    for card in cards:
        transactions = db.session.scalars(select(CardTransaction).where(CardTransaction.card_id == card.id)
                                          .order_by(CardTransaction.id))
        card_rows.append({**_row(card, ("card_number", "card_type", "status", "issued_on", "expires_on",
                                        "issued_at", "renewed_at")),
                          "transactions": [_row(t, ("type", "from_status", "to_status", "reason", "expires_on",
                                                    "created_at")) for t in transactions]})
    registrations = db.session.execute(
        select(EventRegistration, Event).join(Event, Event.id == EventRegistration.event_id)
        .where(EventRegistration.member_id == member.id).order_by(Event.start_at, Event.id)).all()
    checkins = db.session.execute(
        select(EventCheckin, Event).join(Event, Event.id == EventCheckin.event_id)
        .where(EventCheckin.member_id == member.id).order_by(EventCheckin.at, EventCheckin.id)).all()
    changes = db.session.scalars(select(MemberChangeRequest).where(MemberChangeRequest.member_id == member.id)
                                 .order_by(MemberChangeRequest.id))
    erasures = db.session.scalars(select(ErasureRequest).where(ErasureRequest.member_id == member.id)
                                  .order_by(ErasureRequest.id))
    return {
        "generated_at": utcnow().isoformat(),
        "organisation": current_app.config["ORG_NAME"],
        "profile": profile_of(member),
        "pending_email": pending_email(member),
        "consents": {key: _iso(getattr(member, key, None)) for key in CONSENT_KEYS if hasattr(member, key)},
        "photo": ({"content_type": photo[1], "base64": base64.b64encode(photo[0]).decode()} if photo else None),
        "status_history": [_row(c, ("from_status", "to_status", "reason", "changed_at"))
                           for c in sorted(member.status_changes, key=lambda c: c.id)],
        "cards": card_rows,
        "event_registrations": [
            {"event": _event(event), **_row(reg, ("status", "source", "registered_at", "checked_in_at",
                                                 "cancelled_at", "notes"))} for reg, event in registrations],
        "attendance": [{"event": _event(event), **_row(c, ("slot", "at", "gate", "method"))} for c, event in checkins],
        "change_requests": [_row(r, ("status", "fields", "old_values", "note", "reason", "created_at", "decided_at"))
                            for r in changes],
        "erasure_requests": [_row(r, ("status", "reason", "note", "created_at", "handled_at")) for r in erasures],
    }


def _event(event: Event) -> dict[str, Any]:
    return _row(event, ("title", "start_at", "end_at", "venue"))
