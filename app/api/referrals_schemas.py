"""The referrals' one schema (issue 13): what ``app/api/referrals.py`` reads and answers, and the document's
``Referral*`` components.

Limits are the services' (``app.services.referrals``: a prospect's name is
160 characters, a reason 500, a search 100), stated here so that the
document says them and a body beyond them is a 422 before any service runs;
the services still check everything (the console reads the same rules).

A referral's answer carries the prospect's contact details. Nothing here
decides who sees them: a referral is only ever serialized after it was
loaded for the caller (staff with ``referrals.read`` where its referrer
belongs, or the referrer themselves), so whoever gets the answer may read it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import func, select

from app import models
from app.api.schema import (
    Body, Choice, Count, Id, Out, OutId, Page, PageQuery, PerPage, Query, QueryChoice, QueryDate, QueryId, QueryInt,
    QueryText, Text, Timestamp, UnitRef,
)
from app.extensions import db
from app.models import REFERRAL_SOURCES, REFERRAL_STATUSES
from app.services import referrals as referral_service
from app.services.referrals import stats, staff

NAME_MAX = 160  # check_prospect's limit
REASON_MAX = 500  # staff.withdraw and staff.revoke check the same
# A reason in the URL (DELETE /referrals/{id}?reason=): as for cards, short enough that even 4-byte characters,
# percent-encoded, fit in the request line gunicorn accepts (about 4 KB); a longer one goes in the body.
QUERY_REASON_MAX = 300
SEARCH_MAX = 100  # staff.parse_filters refuses longer searches
LEADERBOARD_LIMIT = 20
LEADERBOARD_MAX = 200
OFFSET_MAX = 1_000_000_000  # more recruiters than any organisation has; SQL's OFFSET takes it everywhere


# --- answers: one referral ------------------------------------------------------------------


class ReferralReferrer(Out):
    """The member who brought the person in (a referral lives in their unit)."""

    id: OutId
    name: str
    membership_number: str
    unit_id: OutId


class ReferredMember(Out):
    """The member the referral brought in, once they joined."""

    id: OutId
    name: str
    membership_number: str


class Referral(Out):
    """One recruitment attempt: a code or link used at joining, or a person a member invited."""

    id: OutId
    status: Choice(REFERRAL_STATUSES) = Field(description=(
        "pending: invited, not joined yet; registered: joined; credited: the new member became active and the "
        "points were awarded; expired: nobody joined in time; rejected: withdrawn, turned down, lost to an "
        "earlier referral, or its credit revoked (see reason)."))
    status_label: str = Field(description="The status as people read it (Invited, Joined...).")
    source: Choice(REFERRAL_SOURCES) = Field(description=(
        "link: the join link; code: a code typed on the join form; prospect: invited by the referrer."))
    source_label: str
    referrer: ReferralReferrer
    referred_member: ReferredMember | None = Field(description="Null until the person joins.")
    prospect_name: str | None = Field(description="The invited person, as the referrer recorded them.")
    prospect_phone: str | None = Field(description="E.164.")
    prospect_email: str | None
    code: str | None = Field(description="The referral code used at joining (null for an invitation).")
    reason: str = Field(description="Why it was rejected, expired or its credit reversed; empty otherwise.")
    created_at: Timestamp
    registered_at: Timestamp | None
    credited_at: Timestamp | None
    closed_at: Timestamp | None = Field(description="When it expired or was rejected.")
    points: int = Field(description="What it earned the referrer: the award less any reversal, from the ledger.")

    @classmethod
    def of(cls, referral: models.Referral, points: int | None = None) -> Referral:
        """The answer for ``referral``; ``points`` when a page has summed them already (``points_of``)."""
        referrer, referred = referral.referrer, referral.referred_member
        if points is None:
            points = sum(entry.points for entry in referral.points_entries)
        return cls(
            id=referral.id, status=referral.status,
            status_label=referral_service.STATUS_LABELS.get(referral.status, referral.status),
            source=referral.source, source_label=referral_service.SOURCE_LABELS.get(referral.source, referral.source),
            referrer=ReferralReferrer(id=referrer.id, name=referrer.full_name,
                                      membership_number=referrer.membership_number, unit_id=referrer.unit_id),
            referred_member=None if referred is None else ReferredMember(
                id=referred.id, name=referred.full_name, membership_number=referred.membership_number),
            prospect_name=referral.prospect_name, prospect_phone=referral.prospect_phone,
            prospect_email=referral.prospect_email, code=referral.code, reason=referral.reason or "",
            created_at=referral.created_at, registered_at=referral.registered_at,
            credited_at=referral.credited_at, closed_at=referral.closed_at, points=points)


def points_of(referrals: list[models.Referral]) -> dict[int, int]:
    """Each referral's points (the sum of its ledger entries) for a page: one GROUP BY, not a query per row."""
    ids = [r.id for r in referrals]
    if not ids:
        return {}
    rows = db.session.execute(select(models.PointsEntry.referral_id, func.sum(models.PointsEntry.points))
                              .where(models.PointsEntry.referral_id.in_(ids))
                              .group_by(models.PointsEntry.referral_id))
    return {referral_id: int(total or 0) for referral_id, total in rows}


def items_of(referrals: list[models.Referral]) -> list[Referral]:
    points = points_of(referrals)
    return [Referral.of(r, points.get(r.id, 0)) for r in referrals]


class ReferralPage(Page):
    items: list[Referral]


class ReferralCounts(Out):
    """Referrals by their status now."""

    pending: Count = 0
    registered: Count = 0
    credited: Count = 0
    expired: Count = 0
    rejected: Count = 0


# --- requests: one referral ------------------------------------------------------------------

ProspectName = Text(NAME_MAX, min_length=1)
Phone = Annotated[Text(40), Field(description="Any common spelling; stored as E.164.")]
Email = Annotated[Text(254, min_length=1), Field(json_schema_extra={"format": "email"})]


class ReferralCreate(Body):
    """Someone invited: a name, and a phone number or an email address (or both).

    Without referrer_id the invitation is your own (referrals.create, as a member); with it, staff record it
    for that member (referrals.update where the member belongs).
    """

    name: ProspectName = Field(description="The person's name, as you would address them.")
    phone: Phone | None = None
    email: Email | None = Field(None, description="They are mailed an invitation with the referrer's join link.")
    referrer_id: Id | None = Field(None, description=(
        "Staff: the member who invited them (an active member in your referrals.read area)."))


class ReferralUpdate(Body):
    """A correction to a pending invitation: only the fields sent change; null clears phone or email.

    The result must still have a phone number or an email address and must not clash with another pending
    invitation or a registered member. A changed email is mailed the invitation.
    """

    name: ProspectName = None
    phone: Phone | None = None
    email: Email | None = None


class ReferralWithdrawal(Body):
    """Optional: why the referral is withdrawn (staff must say why; the referrer need not)."""

    reason: Text(REASON_MAX) | None = None


class ReferralWithdrawQuery(Query):
    reason: QueryText(QUERY_REASON_MAX) = Field("", description=(
        f"Why it is withdrawn (or send {{\"reason\"}}, up to {REASON_MAX} characters)."))


class ReferralRevocation(Body):
    """Why the credit is taken back: kept in the ledger and shown to the referrer."""

    reason: Text(REASON_MAX, min_length=1)


class ReferralCodeCheck(Out):
    """A code that can be used now. Nothing about its holder: the code may have been passed on to anyone."""

    code: str = Field(description="The code as stored: upper case, without spaces or dashes.")
    valid: Literal[True]


# --- the list -------------------------------------------------------------------------------


class ReferralFilters(Query):
    status: QueryChoice(REFERRAL_STATUSES) | None = Field(None, description="Only referrals with this status now.")
    source: QueryChoice(REFERRAL_SOURCES) | None = Field(None, description="Only referrals from this source.")
    unit_id: QueryId | None = Field(None, description=(
        "Only referrals whose referrer belongs to this unit or a unit below it (404 outside your area)."))
    referrer_id: QueryId | None = Field(None, description="Only the referrals this member made.")
    q: QueryText(SEARCH_MAX) = Field("", description=(
        "Search: the referrer's or the referred member's name, number, phone or email, or the prospect's name."))
    since: QueryDate | None = Field(None, description="Only referrals recorded on or after this day (UTC).")
    until: QueryDate | None = Field(None, description="Only referrals recorded on or before this day (UTC).")

    def values(self) -> dict[str, Any]:
        """The filters as sent (for the page's links, and for ``staff.parse_filters``)."""
        return {"status": self.status, "source": self.source, "unit_id": self.unit_id,
                "referrer_id": self.referrer_id, "q": self.q, "since": self.since, "until": self.until}

    def filters(self) -> staff.Filters:
        """The service's filters: its rules across fields (until after since) answer 422 naming the field."""
        return staff.parse_filters({key: "" if value is None else str(value) for key, value in self.values().items()})


class ReferralListQuery(PageQuery, ReferralFilters):
    """The filters, then the page."""


# --- figures --------------------------------------------------------------------------------


class ReferralStatsQuery(Query):
    unit_id: QueryId | None = Field(None, description=(
        "Figures for this unit and the units below it (default: your whole referrals.read area)."))
    level: QueryInt(ge=0, le=99) | None = Field(None, description=(
        "The level of the unit leaderboard (0 is the top level; see levels). Default: the level just below "
        "unit_id's (the top level without one)."))
    limit: QueryInt(ge=1, le=LEADERBOARD_MAX) = Field(LEADERBOARD_LIMIT, description="Recruiters per page.")
    offset: QueryInt(ge=0, le=OFFSET_MAX) = Field(0, description="Recruiters to skip (the leaderboard's paging).")


class ReferralFunnel(Out):
    """Recorded -> registered -> credited: each stage counts the referrals that ever reached it."""

    recorded: Count
    registered: Count = Field(description="The person joined (a credit reversed later still counts here).")
    credited: Count = Field(description="The new member became active and the referrer earned the points.")
    registered_rate: float | None = Field(description="registered / recorded (null when nothing was recorded).")
    credited_rate: float | None = Field(description="credited / recorded (null when nothing was recorded).")
    by_status: ReferralCounts = Field(description="Where the referrals are now.")

    @classmethod
    def of(cls, figures: stats.Funnel) -> ReferralFunnel:
        return cls(recorded=figures.recorded, registered=figures.registered, credited=figures.credited,
                   registered_rate=figures.rate("registered"), credited_rate=figures.rate("credited"),
                   by_status=ReferralCounts(**figures.by_status))


class ReferralRecruiter(Out):
    member_id: OutId
    name: str
    membership_number: str
    unit_id: OutId
    unit_name: str
    points: int = Field(description="Their balance: the sum of their ledger entries.")
    credited: Count = Field(description="Referrals credited now.")
    registered: Count = Field(description="Referrals whose person joined (not counting rejected ones).")
    recorded: Count = Field(description="Referrals recorded (not counting rejected ones).")
    rank: Annotated[int, Field(ge=1)] = Field(description="Competition rank by points (1, 2, 2, 4).")


class ReferralLeaderboard(Out):
    """Recruiters with a positive balance, most points first: one page."""

    items: list[ReferralRecruiter]
    total: Count = Field(description="Recruiters with points in the area.")
    limit: Annotated[int, Field(ge=1, le=LEADERBOARD_MAX)]
    offset: Count


class ReferralUnitStanding(Out):
    """A unit's figures: its members' points and referrals, the units below it included."""

    unit_id: OutId
    name: str
    level: Count
    level_name: str
    points: int
    recorded: Count
    registered: Count
    credited: Count
    recruiters: Count = Field(description="Members with a positive balance.")
    rank: Annotated[int, Field(ge=1)]


class ReferralLevel(Out):
    level: Count
    name: str


class ReferralStats(Out):
    """The funnel, the member leaderboard and the unit leaderboard, all within one area."""

    unit: UnitRef | None = Field(description="The unit asked for; null for your whole area.")
    funnel: ReferralFunnel
    leaderboard: ReferralLeaderboard
    level: Count | None = Field(description="The level of units; null when there is none below the unit.")
    levels: list[ReferralLevel] = Field(description="The levels a unit leaderboard can be asked for here.")
    units: list[ReferralUnitStanding] = Field(description="The units of that level in your area, best first.")


# --- the caller's own ------------------------------------------------------------------------


class ReferralRankUnit(Out):
    id: OutId
    name: str
    level: str = Field(description="The level's name (MUSTER_UNIT_LEVELS), e.g. ward.")


class ReferralRank(Out):
    unit: ReferralRankUnit
    rank: Annotated[int, Field(ge=1)] | None = Field(description="Null until you have points.")
    of: Count = Field(description="Active members in the unit (and the units below it).")


class MyReferrals(Page):
    """Your code, link, points and ranks, then a page of your referrals, newest first."""

    code: str | None = Field(description="Your referral code; null unless you are an active member.")
    link: str | None = Field(description="Your join link (/join?ref=CODE); null without a code.")
    points: int = Field(description="Your balance: the sum of your ledger entries.")
    ranks: list[ReferralRank] = Field(description="In your ward, then in the unit above it.")
    counts: ReferralCounts
    items: list[Referral]


class MyReferralsQuery(PageQuery):
    per_page: PerPage = 20
