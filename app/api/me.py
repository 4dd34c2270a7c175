"""Self-service under /api/v1: the signed-in member's profile, card and events; registering oneself.

Thin views over ``app.services.self_service``, which acts only on the
caller's own member record (the one linked to their login): no path here
carries a member or card id, so there is none to change. A login without a
live member record (most staff) gets 404 on every ``/me`` path.

``PATCH /me`` changes contact fields only (phone, email, address), checked by
the member registry's rules, every field at fault listed at once (422).
``POST /events/{id}/register`` (in ``events``) registers the caller;
``DELETE /events/{id}/register`` here cancels their own registration.
"""

from __future__ import annotations

from datetime import date

from flask import Response
from pydantic import Field

from app import models
from app.api.cards import CardDetail, QrQuery
from app.api.context import actor, bp
from app.api.events import CancelledRegistration, Event, MemberEvent, RegistrationFields
from app.api.members import Email
from app.api.schema import Body, Choice, Count, Out, OutId, Page, PageQuery, QueryChoice, Text
from app.api.serialize import page_of
from app.api.spec import BINARY, Content, operation
from app.extensions import db
from app.models import MEMBER_STATUSES
from app.services import card_pdf, self_service
from app.services import events as event_service
from app.services import profile as profile_service


# --- schemas -----------------------------------------------------------------------------


class MyUnit(Out):
    id: OutId
    name: str
    code: str
    level: str = Field(description="The level's name (MUSTER_UNIT_LEVELS), e.g. ward.")


class Me(Out):
    """The signed-in member's own record (what they may read of it)."""

    id: OutId
    membership_number: str
    first_name: str
    last_name: str
    other_names: str | None
    status: Choice(MEMBER_STATUSES)
    joined_on: date
    unit: MyUnit
    phone: str | None = Field(description="E.164, e.g. +260977123456.")
    email: str | None
    address: str | None
    pending_email: str | None = Field(description="A new address waiting for the link mailed to it to be "
                                                  "followed; email changes only then.")

    @classmethod
    def of(cls, member: models.Member) -> Me:
        unit = member.unit
        return cls.model_validate({
            **{key: getattr(member, key) for key in cls.model_fields if key not in ("unit", "pending_email")},
            "unit": {"id": unit.id, "name": unit.name, "code": unit.code, "level": unit.level_name},
            "pending_email": profile_service.pending_email(member),
        })


class MeUpdate(Body):
    """Contact fields: only those sent change; null clears one."""

    service_check = staticmethod(self_service.clean_contact)

    phone: str | None = Field(None, description="Any common spelling; stored as E.164. Unique.")
    email: Email | None = Field(None, json_schema_extra={"format": "email"},
                                description="Unique (case-insensitive). A new address is mailed a confirmation "
                                            "link and shows as pending_email until it is followed; null clears "
                                            "the address at once. Your login's address does not change.")
    address: Text(500) | None = None


class MyEvent(MemberEvent):
    """One of your registrations, with its event and your place on the waiting list."""

    waitlist_position: Count | None = Field(description="Your place on the waiting list (1 is next); null "
                                                        "unless waitlisted.")


class MyEventPage(Page):
    items: list[MyEvent]


class MyEventsQuery(PageQuery):
    when: QueryChoice(self_service.WHEN) = Field("all", description=(
        "upcoming: events not ended yet, soonest first; past: ended ones (your attendance history), latest "
        "first; all: latest first."))


# --- profile -------------------------------------------------------------------------------


@bp.get("/me")
@operation("me", responses={200: (Me, "Your membership record.")}, errors=(403, 404))
def get_me():
    """Your profile

    Names, membership number, status, unit and contact fields. Needs profile.read_own.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    return Me.of(self_service.own_member(actor()))


@bp.patch("/me")
@operation("me", responses={200: (Me, "Your record after the change.")}, errors=(400, 403, 404, 409))
def update_me(json: MeUpdate):
    """Change your contact details

    phone, email and address only (other fields are changed by staff, or asked for in the portal). A new
    email changes only once the link mailed to it is followed (pending_email until then). A phone or email
    another member has is a 409 that does not say whose it is. Needs profile.update_own.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    member = profile_service.update_contact(actor(), json.values())
    db.session.commit()
    return Me.of(member)


# --- card ----------------------------------------------------------------------------------


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/me/card")
@operation("me", responses={200: (CardDetail, "Your current card, else your latest one.")}, errors=(403, 404))
def my_card():
    """Your card

    The current card (active or suspended), else the latest; 404 when you never had one. status says
    whether it is valid today. Needs cards.read_own.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    return CardDetail.of(self_service.my_card(actor()))


@bp.get("/me/card/qr")
@operation("me", responses={200: (Content({"image/png": BINARY, "image/svg+xml": {"type": "string"}}),
                                  "The QR code of your card's verification URL.")}, errors=(403, 404, 409))
def my_card_qr(query: QrQuery):
    """Your card's QR code

    PNG, or SVG with ?format=svg. Only for a card valid today: an expired, suspended or revoked card is a
    409 saying so.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    card = self_service.card_for_display(actor())
    if query.format == "svg":
        return _private(Response(card_pdf.qr_svg(card), mimetype="image/svg+xml"))
    return _private(Response(card_pdf.qr_png(card), mimetype="image/png"))


@bp.get("/me/card/pdf")
@operation("me", responses={200: (Content({"application/pdf": BINARY}),
                                  "ID-1 (85.6 x 53.98 mm) PDF: front, then back.")}, errors=(403, 404, 409))
def my_card_pdf():
    """Your card as a PDF

    The same renderer as the console's. Only for a card valid today (409 otherwise).
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    card = self_service.card_for_display(actor())
    response = Response(card_pdf.render_card_pdf(card), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="card-{card.card_number}.pdf"'
    return _private(response)


# --- events --------------------------------------------------------------------------------


@bp.get("/me/events")
@operation("me", responses={200: (MyEventPage, "A page of your registrations with their events.")},
           errors=(400, 403, 404))
def my_events(query: MyEventsQuery):
    """Your events

    Your registrations (any status, waiting-list place included) with their events. The events open to
    you are GET /events.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    me = actor()
    self_service.own_member(me)
    regs, total = self_service.registrations_page(me, query.when, query.offset, query.per_page)
    figures = event_service.counts_for([r.event for r in regs])
    positions = self_service.waitlist_positions(regs)
    items = [MyEvent.model_validate({**{key: getattr(r, key) for key in RegistrationFields.model_fields},
                                     "event": Event.of(r.event, figures[r.event_id]),
                                     "waitlist_position": positions.get(r.id)}) for r in regs]
    return page_of(items, query.page, query.per_page, total, "api.my_events", when=query.when)


@bp.delete("/events/<pk:event_id>/register")
@operation("events", responses={200: (CancelledRegistration, "Your cancelled registration.")},
           errors=(403, 404, 409))
def cancel_my_registration(event_id: int):
    """Cancel your registration

    For yourself (events.register); the first waitlisted members move up (promoted_member_ids). 404
    when the event is not open to you or you are not registered; 409 when already cancelled or attended.
    Staff cancel someone else's with DELETE /events/{id}/register/{member_id}.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    reg, promoted = self_service.cancel_self(actor(), event_id)
    db.session.commit()
    return CancelledRegistration.of(reg, promoted_member_ids=[r.member_id for r in promoted])
