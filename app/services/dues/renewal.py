"""When a member may pay online: the renewal window, and the signed "Renew now" link of the reminders.

A member renews from ``MUSTER_RENEWAL_WINDOW_DAYS`` (default 60) before
their membership's valid-until (the current card's expiry), through the
card's grace period and after it (a lapsed member paying rejoins). Before
the window opens, "Renew" is not offered: a payment then would only add a
period to a membership that has most of a period left, and a member who
pays twice by mistake is the commonest refund. A member without a card yet
(an applicant) may always pay; a lifetime membership has nothing to renew.
Staff recording a payment are not bound by the window: a treasurer who
takes cash early knows what they are doing, and the extension runs from the
later of today and the expiry either way.

The "Renew now" link in a renewal reminder lets the member start paying
without signing in: a ``links`` token (signed, names nobody) of purpose
``renew``, valid for ``RENEW_LINK_DAYS``. It is not spent by a visit (a
member who turns back at Stripe's page can follow it again), but a newer
reminder's link replaces it, and once the period is paid the page says so
instead of offering tiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app

from app.models import Member, OneTimeLink
from app.services import links
from app.services.cards.lifecycle import current_card
from app.services.errors import ServiceError

PAYABLE_STATUSES = ("pending", "active", "lapsed")  # who may pay online (the rest are held for staff anyway)
RENEW_LINK = "renew"  # the links purpose (app/models/links.LINK_PURPOSES)
RENEW_LINK_DAYS = 45  # a reminder 30 days ahead stays good through the expiry and a fortnight of grace
TOKEN_MAX = 200  # longer than any token ``links.issue`` makes: a longer one is refused unread


@dataclass(frozen=True)
class RenewalState:
    """Whether the member may pay now and, when not, why and from when."""

    open: bool
    message: str
    expires_on: date | None = None
    opens_on: date | None = None
    lifetime: bool = False


def window_days() -> int:
    return int(current_app.config["RENEWAL_WINDOW_DAYS"])


def renewal_state(member: Member, today: date | None = None) -> RenewalState:
    """Whether "Renew" is offered to ``member`` today, with the sentence the portal shows."""
    today = today or date.today()
    if member.is_deleted or member.status not in PAYABLE_STATUSES:
        return RenewalState(False, f"Your membership is {member.status}: please contact your "
                                   f"{member.unit.level_name if member.unit else 'branch'} about paying.")
    card = current_card(member)
    if card is None or card.status not in ("active", "expired"):
        return RenewalState(True, "Choose a membership to pay for.")
    if card.expires_on is None:
        return RenewalState(False, "Your membership is for life: there is nothing to renew.", lifetime=True)
    opens = card.expires_on - timedelta(days=window_days())
    if today < opens:
        return RenewalState(False, f"Your membership is valid until {card.expires_on:%d %B %Y}. You can renew "
                                   f"from {opens:%d %B %Y}.", expires_on=card.expires_on, opens_on=opens)
    verb = "expired on" if card.expires_on < today else "is valid until"
    return RenewalState(True, f"Your membership {verb} {card.expires_on:%d %B %Y}: renew it now.",
                        expires_on=card.expires_on)


def require_open(member: Member, today: date | None = None) -> RenewalState:
    """The state, or a 409 with its message when the member may not pay online now."""
    state = renewal_state(member, today)
    if not state.open:
        raise ServiceError(state.message, status=409)
    return state


def renew_link_token(member: Member) -> str:
    """A new "Renew now" token for ``member`` (flushed; the caller commits it with the mail that carries it)."""
    return links.issue(RENEW_LINK, member=member, hours=RENEW_LINK_DAYS * 24)


def member_for_link(token: str | None) -> tuple[OneTimeLink, Member]:
    """The link and its member, if the token can still be used (LinkInvalid, LinkExpired, LinkUsed otherwise)."""
    if len(token or "") > TOKEN_MAX:
        raise links.LinkInvalid("This link is not valid: it may have been cut short or changed. Sign in to pay "
                                "your dues.")
    link = links.check(RENEW_LINK, token)
    if link.member is None or link.member.is_deleted:
        raise links.LinkInvalid("This link is not valid any more. Sign in to pay your dues.")
    return link, link.member
