"""Referrals under /api/v1 (issue 13): the staff list, one referral and its corrections, a code's check, the
figures, and a member's own.

Thin views over ``app.services.referrals`` (``.staff`` for staff work, ``.stats`` for the figures, ``.mine``
for a member's own): every rule, including who may do what, is the services'; the views parse, call,
commit once and serialize (``app/api/referrals_schemas.py``). A referral lives where its referrer belongs,
so a ward coordinator lists, reads and counts only their wards' recruiters' referrals; outside their area
a referral answers 404, inside it without the right 403 (``app.security``).

- ``GET /referrals`` (referrals.read), ``GET /members/{id}/referrals``: scoped lists, newest first.
- ``POST /referrals``: an invitation; the caller's own (referrals.create, as a member) or, with
  ``referrer_id``, staff recording one for a member (referrals.update). An email address is mailed the
  referrer's join link through the queue once the request has committed.
- ``GET``/``PATCH``/``DELETE /referrals/{id}``: read; correct a pending invitation; withdraw an open
  referral (a credited one is revoked instead: ``POST /referrals/{id}/revoke``, which reverses the points
  in the ledger). The referrer reads, corrects and withdraws their own pending invitations too.
- ``GET /referrals/code/{code}``: public, for the join form and the phone app (see its docstring).
- ``GET /referrals/stats``: funnel and leaderboards of the caller's area (``stats.area``).
- ``GET /me/referrals``: the member's code, link, points, ranks and referrals.
"""

from __future__ import annotations

from flask import current_app, url_for

from app import models
from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.referrals_schemas import (
    MyReferrals, MyReferralsQuery, Referral, ReferralCodeCheck, ReferralCounts, ReferralCreate, ReferralFunnel,
    ReferralLeaderboard, ReferralLevel, ReferralListQuery, ReferralPage, ReferralRecruiter, ReferralRevocation,
    ReferralStats, ReferralStatsQuery, ReferralUnitStanding, ReferralUpdate, ReferralWithdrawal, ReferralWithdrawQuery,
    items_of,
)
from app.api.schema import PageQuery, UnitRef
from app.api.serialize import page_of
from app.api.spec import operation
from app.extensions import db, limiter
from app.security import has_permission, load_for, permits
from app.services import referrals as referral_service
from app.services.errors import AccessDenied, ServiceError
from app.services.referrals import mine, staff, stats

READ, UPDATE = staff.READ, staff.UPDATE
# Lookups of codes by anyone, per address: generous for a join form (one check per person typing), far too
# slow to walk the 31^6 codes (MUSTER_REFERRAL_CODE_RATE_LIMIT).


# --- access -----------------------------------------------------------------------------------


def _referral(referral_id: int):
    """The referral if the caller may read it: staff through referrals.read scope, a referrer their own.

    Staff are judged as staff first; a caller who is also the referrer (referrals.read_own, which staff
    who are members keep for their own records) reads their own even outside their staff area. Both
    refusals are the services' (404 out of sight, 403 in sight without the right).
    """
    me = actor()
    try:
        return staff.load(me, referral_id, READ)
    except AccessDenied:
        if not has_permission(me, mine.READ):
            raise
    return staff.load(me, referral_id, mine.READ)


def _referrer(referrer_id: int) -> models.Member | None:
    """The member a staff invitation is recorded for (None: the caller's own invitation).

    Whoever may record referrals for members nowhere is refused before the id is looked at (403: they
    learn nothing about it); a member out of the caller's referrals.read sight is a 422 on the field, as
    any id in a body; seen but not theirs to act on, ``staff.record_for`` answers 403.
    """
    me = actor()
    own = getattr(me, "member", None)
    if own is not None and own.id == referrer_id and own.deleted_at is None and not has_permission(me, UPDATE):
        return None  # a member naming themselves: their own invitation
    if not has_permission(me, UPDATE):
        raise ApiError(403, "You may not record referrals for other members.", {"permission": UPDATE})
    member = db.session.get(models.Member, referrer_id)
    if member is None or member.deleted_at is not None or not permits(me, READ, member):
        message = "No such member in your area."
        raise ApiError(422, message, {"field": "referrer_id", "fields": {"referrer_id": message}})
    return member


def _created(referral: models.Referral):
    return Referral.of(referral), 201, {"Location": url_for("api.get_referral", referral_id=referral.id)}


# --- the staff list ---------------------------------------------------------------------------


@bp.get("/referrals")
@operation("referrals", permission=READ, responses={200: (ReferralPage, "A page of referrals, newest first.")},
           errors=(404,))
def list_referrals(query: ReferralListQuery):
    """List referrals

    The referrals whose referrer belongs to your referrals.read area, newest first; the total counts the
    same set. A unit_id outside your area is a 404; until before since a 422.
    """
    rows, total = staff.page(actor(), query.filters(), offset=query.offset, limit=query.per_page)
    return page_of(items_of(rows), query.page, query.per_page, total, "api.list_referrals", **query.values())


@bp.get("/members/<pk:member_id>/referrals")
@operation("referrals", responses={200: (ReferralPage, "A page of the member's referrals, newest first.")},
           errors=(403, 404))
def member_referrals(member_id: int, query: PageQuery):
    """A member's referrals

    The referrals the member made (whoever they brought, whatever became of it). Needs referrals.read where
    the member belongs.
    """
    me = actor()
    member = load_for(me, models.Member, member_id, READ, message="You may not see this member's referrals.")
    rows, total = staff.member_referrals(me, member, offset=query.offset, limit=query.per_page)
    return page_of(items_of(rows), query.page, query.per_page, total, "api.member_referrals", member_id=member.id)


# --- one referral ----------------------------------------------------------------------------


@bp.post("/referrals")
@operation("referrals", responses={201: (Referral, "The invitation, pending until the person joins.")},
           errors=(403, 404, 409, 429), location=True)
def create_referral(json: ReferralCreate):
    """Record an invitation

    Without referrer_id (or with your own member id) it is yours: needs referrals.create and an active
    membership (404 when your login has no member record). With referrer_id, staff record it for that member:
    needs referrals.update where the member belongs. Refused: the referrer's own phone or email (422),
    someone already registered or already invited and pending (409), more than
    MUSTER_REFERRAL_PROSPECTS_PER_DAY a day per referrer (429). An email address is mailed the referrer's
    join link.
    """
    me = actor()
    referrer = _referrer(json.referrer_id) if json.referrer_id is not None else None
    if referrer is None:
        referral = mine.invite(me, json.name, json.phone, json.email)
    else:
        referral = staff.record_for(me, referrer, json.name, json.phone, json.email)
    db.session.commit()  # the invitation mail is queued by this commit, never before it
    return _created(referral)


@bp.get("/referrals/<pk:referral_id>")
@operation("referrals", responses={200: (Referral, "The referral.")}, errors=(403, 404))
def get_referral(referral_id: int):
    """Read a referral

    Staff within referrals.read scope; a member their own referrals.
    """
    return Referral.of(_referral(referral_id))


@bp.patch("/referrals/<pk:referral_id>")
@operation("referrals", responses={200: (Referral, "The invitation after the correction.")},
           errors=(403, 404, 409))
def update_referral(referral_id: int, json: ReferralUpdate):
    """Correct an invitation

    The name, phone or email of an invitation still pending (409 otherwise). Staff need referrals.update
    where the referrer belongs; a member corrects their own. The same checks as recording one apply (every
    field at fault at once, 422; a clash with another pending invitation or a registered member, 409).
    """
    referral = staff.update_prospect(actor(), _referral(referral_id), json.values())
    db.session.commit()
    return Referral.of(referral)


@bp.delete("/referrals/<pk:referral_id>")
@operation("referrals", responses={200: (Referral, "The referral, now rejected with the reason.")},
           errors=(403, 404, 409), optional_body=True)
def withdraw_referral(referral_id: int, query: ReferralWithdrawQuery, json: ReferralWithdrawal):
    """Withdraw a referral

    An open one (pending or registered) is closed as rejected, with a reason (an optional JSON body
    {"reason"}, or ?reason=): staff need referrals.update where the referrer belongs and must give one
    (422); a member withdraws their own pending invitations. A credited referral is not withdrawn but
    revoked (POST /referrals/{id}/revoke): 409; so are expired and rejected ones.
    """
    referral = staff.withdraw(actor(), _referral(referral_id), json.reason or query.reason or None)
    db.session.commit()
    return Referral.of(referral)


@bp.post("/referrals/<pk:referral_id>/revoke")
@operation("referrals", responses={200: (Referral, "The referral, rejected, its points reversed.")},
           errors=(403, 404, 409))
def revoke_referral(referral_id: int, json: ReferralRevocation):
    """Revoke a referral's credit

    A reversal entry cancels the award in the ledger (the award stays, so the history shows both and every
    balance is still the sum of its entries); the referral becomes rejected with the reason, which the
    referrer is told. Needs referrals.update where the referrer belongs; 409 unless the referral is credited.
    """
    me = actor()
    referral = staff.load(me, referral_id, UPDATE)
    staff.revoke(me, referral, json.reason)
    db.session.commit()
    return Referral.of(referral)


# --- a code -----------------------------------------------------------------------------------


def _code_rate_limit() -> str:
    return current_app.config["REFERRAL_CODE_RATE_LIMIT"]


def _refusal_status(raw: str) -> int:
    """404 for a well-formed code nobody holds; 422 for the rest (malformed, or its holder no longer recruits)."""
    try:
        code = referral_service.normalise_code(raw)
    except ServiceError:
        return 422
    return 404 if code is not None and referral_service.find_by_code(code) is None else 422


@bp.get("/referrals/code/<code>")
@limiter.limit(_code_rate_limit)
@operation("referrals", public=True, responses={200: (ReferralCodeCheck, "The code can be used.")},
           errors=(404, 422, 429))
def check_referral_code(code: str):
    """Check a referral code

    For the join form and the phone app, which check a code as it is typed, before the person has an
    account: so it needs no token, and it is rate limited per address (30 a minute unless the
    REFERRAL_CODE_RATE_LIMIT setting says otherwise: 429) so that nobody can walk the codes. Case, spaces
    and dashes do not matter.
    A malformed code (the alphabet has no 0, O, 1, I or L) or one whose holder is no longer an active
    member is a 422, an unknown one a 404, each with a message to show; the person can still join without
    a code. The answer says nothing about whose code it is: a code may be passed on to anyone.
    """
    try:
        normalised, _referrer = referral_service.check_code(code)
    except ServiceError as exc:
        status = _refusal_status(code)
        details = {"field": "code", **({"fields": {"code": exc.message}} if status == 422 else {})}
        raise ApiError(status, exc.message, details) from None
    return ReferralCodeCheck(code=normalised, valid=True)


# --- figures ----------------------------------------------------------------------------------


def _level(asked: int | None, levels: list[tuple[int, str]]) -> int | None:
    """The unit leaderboard's level: the one asked for if the area has it, else the first below the area."""
    allowed = [level for level, _name in levels]
    if asked is None:
        return allowed[0] if allowed else None
    if asked not in allowed:
        message = (f"'level' must be one of: {', '.join(map(str, allowed))}." if allowed
                   else "There is no level below this unit.")
        raise ApiError(422, message, {"field": "level", "fields": {"level": message}, "allowed": allowed})
    return asked


@bp.get("/referrals/stats")
@operation("referrals", permission=READ, responses={200: (ReferralStats, "The figures of the area.")},
           errors=(404,))
def referral_stats(query: ReferralStatsQuery):
    """Referral figures

    Within your referrals.read area, or unit_id's part of it (404 outside it, 403 without the right there):
    the funnel (recorded -> registered -> credited, and where referrals are now), the member leaderboard
    by points (paged with limit and offset; ties share a rank) and the unit leaderboard at one level
    (level, default the one just below unit_id). Points are always the ledger's sums.
    """
    where = stats.area(actor(), query.unit_id)
    levels = stats.levels_below(where)
    level = _level(query.level, levels)
    recruiters, total = stats.leaderboard(where, limit=query.limit, offset=query.offset)
    units = stats.unit_leaderboard(where, level) if level is not None else []
    return ReferralStats(
        unit=UnitRef.model_validate(where.unit) if where.unit is not None else None,
        funnel=ReferralFunnel.of(stats.funnel(where)),
        leaderboard=ReferralLeaderboard(items=[ReferralRecruiter.model_validate(r) for r in recruiters], total=total,
                                limit=query.limit, offset=query.offset),
        level=level, levels=[ReferralLevel(level=lvl, name=name) for lvl, name in levels],
        units=[ReferralUnitStanding.model_validate(u) for u in units])


# --- the caller's own -------------------------------------------------------------------------


@bp.get("/me/referrals")
@operation("referrals", responses={200: (MyReferrals, "Your code, link, points and ranks, and your referrals.")},
           errors=(403, 404))
def my_referrals(query: MyReferralsQuery):
    """Your referrals

    Your referral code and join link (active members only: null otherwise), your points (the sum of your
    ledger), your rank in your ward and in the unit above it (null until you have points), your referrals
    counted by status, and a page of them, newest first. Needs referrals.read_own.
    404 also when your login is not linked to a membership record (staff logins usually are not).
    """
    me = actor()
    summary = mine.summary(me)
    rows, total = mine.referrals_page(me, offset=query.offset, limit=query.per_page)
    body = page_of(items_of(rows), query.page, query.per_page, total, "api.my_referrals")
    answer = MyReferrals.model_validate({
        **body, "code": summary.code, "link": summary.link, "points": summary.points,
        "ranks": [{"unit": {"id": r.unit.id, "name": r.unit.name, "level": r.unit.level_name},
                   "rank": r.rank, "of": r.of} for r in summary.ranks],
        "counts": ReferralCounts(**summary.counts),
    })
    db.session.commit()  # a code is created the first time it is asked for: keep it (after reading the rows)
    return answer
