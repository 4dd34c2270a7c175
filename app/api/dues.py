"""Dues under /api/v1 (issue 14): tiers, payments, a member's history, and the caller's own.

Thin views over ``app.services.dues``: every rule, including who may do
what, is the service's (``app.security`` underneath); the views parse, call,
commit once and serialize. A payment lives in the unit where it was paid, so
a ward treasurer lists and records their wards' payments only: outside their
area 404, inside it without the right 403.

- ``GET /tiers``: what a member can pay for (any signed-in caller).
- ``GET /payments`` (payments.read): scoped, newest first, by status and method.
- ``POST /payments`` (payments.create): a manual payment (cash, bank transfer,
  mobile money, other): completed at once, the membership extended and a
  receipt number allocated in the same commit.
- ``GET /members/{id}/payments`` (payments.read), ``GET /me/payments`` (the
  caller's own membership record).
- ``GET /payments/{id}/receipt``: the PDF receipt (staff in scope, or the payer).
- ``POST /me/payments/checkout``: what the portal's "Pay online" does, for a
  phone app: the pending payment and the Stripe Checkout URL to open.
"""

from __future__ import annotations

from datetime import date

from flask import Response
from pydantic import Field
from sqlalchemy import func, select

from app import models
from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import Body, Choice, Id, Out, OutId, Page, PageQuery, QueryChoice, Text, Timestamp
from app.api.serialize import page_of
from app.api.spec import BINARY, Content, operation
from app.extensions import db
from app.models import MANUAL_METHODS, PAYMENT_METHODS, PAYMENT_STATUSES
from app.security import has_permission, load_for
from app.services import dues, self_service
from app.services.dues import online, payments, receipts, tiers


class Tier(Out):
    """Something a member can pay for."""

    id: OutId
    name: str
    description: str
    price_minor: int = Field(description="In the currency's minor unit (cents, ngwee).")
    currency: str = Field(description="ISO 4217.")
    duration_months: int | None = Field(description="Null: for life.")
    card_type: str
    active: bool


class TierList(Out):
    items: list[Tier]


class PaymentMember(Out):
    id: OutId
    name: str
    membership_number: str


class Payment(Out):
    """One payment: online or recorded by staff; what it extended and its receipt."""

    id: OutId
    member: PaymentMember
    tier: Tier
    unit_id: OutId = Field(description="Where it was paid (the member's unit then).")
    amount_minor: int
    currency: str
    amount: str = Field(description="The amount as people read it: 120.00 ZMW.")
    method: Choice(PAYMENT_METHODS)
    status: Choice(PAYMENT_STATUSES)
    reference: str
    receipt_number: str | None = Field(description="R-YYYY-NNNNNN, once the payment renewed the membership.")
    created_at: Timestamp
    completed_at: Timestamp | None
    fulfilled_at: Timestamp | None = Field(description="When it extended the membership (null: not yet, or held).")
    refunded_at: Timestamp | None
    extended_from: date | None = Field(description="The membership's valid-until before (null: none, or lifetime).")
    extended_to: date | None = Field(description="The valid-until after (null: for life).")
    hold_reason: str = Field(description="Why it waits for staff; empty when nothing is held.")

    @classmethod
    def of(cls, payment: models.Payment) -> Payment:
        m = payment.member
        return cls.model_validate({
            **{k: getattr(payment, k) for k in (
                "id", "unit_id", "amount_minor", "currency", "method", "status", "reference", "receipt_number",
                "created_at", "completed_at", "fulfilled_at", "refunded_at", "extended_from", "extended_to",
                "hold_reason")},
            "member": {"id": m.id, "name": m.full_name, "membership_number": m.membership_number},
            "tier": Tier.model_validate(payment.tier),
            "amount": dues.format_money(payment.amount_minor, payment.currency),
        })


class PaymentPage(Page):
    items: list[Payment]


class PaymentListQuery(PageQuery):
    status: QueryChoice(PAYMENT_STATUSES) | None = None
    method: QueryChoice(PAYMENT_METHODS) | None = None


class ManualPayment(Body):
    """A payment a treasurer received: cash, a bank transfer, mobile money or other."""

    member_id: Id
    tier_id: Id
    method: Choice(MANUAL_METHODS)
    reference: Text(dues.REFERENCE_MAX) = Field("", description="Required for bank transfers and mobile money.")
    amount_minor: int | None = Field(None, ge=1, le=10**12, description="Default: the tier's price.")


class CheckoutRequest(Body):
    """The tier to pay for (``GET /tiers``)."""

    tier_id: Id


class CheckoutStarted(Out):
    payment: Payment
    checkout_url: str = Field(description="Stripe's payment page: open it in a browser. Stripe sends the member "
                                          "back to the portal, which confirms the payment with Stripe.")


def _page(stmt, query: PageQuery, endpoint: str, **args):
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = [] if query.offset >= total else list(db.session.scalars(
        stmt.order_by(models.Payment.created_at.desc(), models.Payment.id.desc())
        .offset(query.offset).limit(query.per_page)))
    return page_of([Payment.of(p) for p in rows], query.page, query.per_page, total, endpoint, **args)


@bp.get("/tiers")
@operation("payments", responses={200: (TierList, "The tiers on offer, cheapest first.")})
def list_tiers():
    """List membership tiers

    What a member can pay for: price, currency, duration (null: for life) and the card it carries.
    """
    return TierList(items=[Tier.model_validate(t) for t in tiers.active_tiers()])


@bp.get("/payments")
@operation("payments", permission=dues.READ, responses={200: (PaymentPage, "A page of payments, newest first.")})
def list_payments(query: PaymentListQuery):
    """List payments

    The payments made in your payments.read area, newest first; filter by status and method.
    """
    me = actor()
    filters = payments.parse_filters(me, {"status": query.status or "", "method": query.method or ""})
    stmt = select(models.Payment).where(*payments.list_clauses(me, filters))
    return _page(stmt, query, "api.list_payments", status=query.status, method=query.method)


@bp.post("/payments")
@operation("payments", permission=dues.CREATE, responses={201: (Payment, "The payment, completed and receipted.")},
           errors=(403, 404))
def record_payment(json: ManualPayment):
    """Record a manual payment

    Completed at once: the member's membership is extended by the tier's duration from the later of today and
    its current expiry, the card renewed or issued, a receipt number allocated, all in one commit. A payment
    for a suspended or expelled member is recorded and held for staff (see hold_reason). Needs payments.create
    where the member belongs; a member outside your area is a 422 on member_id.
    """
    me = actor()
    if not has_permission(me, dues.CREATE):
        raise ApiError(403, "You may not record payments.", {"permission": dues.CREATE})
    member = dues.payer(me, member_id=json.member_id)
    if member is None:
        message = "No such member in your area."
        raise ApiError(422, message, {"field": "member_id", "fields": {"member_id": message}})
    payment = dues.record_manual(me, member, json.model_dump(exclude={"member_id"}))
    db.session.commit()
    return Payment.of(payment), 201


@bp.get("/members/<pk:member_id>/payments")
@operation("payments", responses={200: (PaymentPage, "The member's payments, newest first.")}, errors=(403, 404))
def member_payments(member_id: int, query: PageQuery):
    """A member's payments

    Every payment of the member (completed, held, refunded). Needs payments.read where the member belongs.
    """
    member = load_for(actor(), models.Member, member_id, dues.READ, message="You may not see this member's payments.")
    stmt = select(models.Payment).where(models.Payment.member_id == member.id)
    return _page(stmt, query, "api.member_payments", member_id=member.id)


@bp.get("/me/payments")
@operation("payments", responses={200: (PaymentPage, "Your payments, newest first.")}, errors=(403, 404))
def my_payments(query: PageQuery):
    """Your payments

    Every payment of your membership, with its receipt number and what it extended. 404 when your login is not
    linked to a membership record.
    """
    member = self_service.own_member(actor())
    stmt = select(models.Payment).where(models.Payment.member_id == member.id)
    return _page(stmt, query, "api.my_payments")


@bp.post("/me/payments/checkout")
@operation("payments", responses={201: (CheckoutStarted, "The pending payment and where to pay it.")},
           errors=(404, 409, 502))
def my_checkout(json: CheckoutRequest):
    """Pay your dues online

    Creates a pending payment of the tier and its Stripe Checkout Session; open ``checkout_url`` to pay. The
    payment completes (and the membership renews) when Stripe confirms it, through its webhook or the portal's
    return page; follow it with ``GET /me/payments``. 409 when online payment is off, your membership cannot
    be paid for online (suspended, for life) or its renewal window has not opened yet (the message says when
    it does); 422 on tier_id for an unknown or withdrawn tier; 502 when Stripe cannot be reached.
    """
    member = self_service.own_member(actor())
    tier = db.session.get(models.MembershipTier, json.tier_id)
    if tier is None:
        message = "No such tier: see GET /api/v1/tiers."
        raise ApiError(422, message, {"field": "tier_id", "fields": {"tier_id": message}})
    payment, url = online.start_checkout(member, tier)
    db.session.commit()
    return CheckoutStarted(payment=Payment.of(payment), checkout_url=url), 201


@bp.get("/payments/<pk:payment_id>/receipt")
@operation("payments", responses={200: (Content({"application/pdf": BINARY}), "The receipt, one A4 page.")},
           errors=(403, 404, 409))
def payment_receipt(payment_id: int):
    """A payment's receipt

    The PDF receipt of a fulfilled payment (a refunded one is marked so): staff with payments.read where it was
    paid, or the member who paid. 409 while the payment has no receipt (pending, failed, cancelled, held).
    """
    me = actor()
    payment = db.session.get(models.Payment, payment_id)
    own = payment is not None and getattr(getattr(me, "member", None), "id", None) == payment.member_id
    if not own:
        payment = load_for(me, models.Payment, payment_id, dues.READ, message="You may not see this payment.")
    body = receipts.render_receipt_pdf(payment)
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{receipts.receipt_filename(payment)}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
