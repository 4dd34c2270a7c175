"""A member's own referrals: their code, join link and its QR, who they brought, their points and ranks.

For the portal's "Refer a friend" page and ``GET /api/v1/me/referrals``:
one summary, so the page and the API show the same figures. The member is
the actor's own record, used with ``referrals.read_own`` (reading) or
``referrals.create`` (recording an invitation), through ``self_service.own_member``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from app.database import write_aside
from app.extensions import db
from app.models import Member, Referral, ReferralCode
from app.services import self_service
from app.services.card_pdf.qr import png_of, svg_of
from app.services.errors import NotFound
from app.services.referrals import REFERRER_STATUSES, balance, code_for, join_link, record_prospect
from app.services.referrals.stats import Rank, ranks_of

READ = "referrals.read_own"
CREATE = "referrals.create"


@dataclass
class Summary:
    """What a member sees about their own recruiting."""

    member: Member
    code: str | None  # None: not an active member, so no code to share yet
    link: str | None
    points: int
    ranks: list[Rank]
    counts: dict[str, int]  # referrals by status

    @property
    def can_refer(self) -> bool:
        return self.code is not None


def shared_code(member: Member) -> str:
    """The member's code, created on first use even in a reading request (``write_aside``: its own short commit)."""
    existing = db.session.get(ReferralCode, member.id)
    if existing is not None:
        return existing.code
    with write_aside():
        code = code_for(member)
    return code


def me(actor: Any, permission: str = READ) -> Member:
    """The actor's own member record, for their referrals (404 without one, 403 without the right)."""
    return self_service.own_member(actor, permission)


def summary(actor: Any) -> Summary:
    """The actor's code and link (created on first use), points, ranks and referral counts.

    Only active members get a code to share: a pending applicant's or a
    lapsed member's would be refused at the join form anyway.
    """
    member = me(actor)
    active = member.status in REFERRER_STATUSES
    code = shared_code(member) if active else None
    points = balance(member)
    counts = dict(db.session.execute(select(Referral.status, func.count()).where(
        Referral.referrer_id == member.id).group_by(Referral.status)).all())
    return Summary(member, code, join_link(code) if code else None, points, ranks_of(member, points),
                   {k: int(v) for k, v in counts.items()})


def referrals_page(actor: Any, *, offset: int = 0, limit: int = 20) -> tuple[list[Referral], int]:
    """The actor's referrals, newest first: one page and the total."""
    member = me(actor)
    where = Referral.referrer_id == member.id
    total = db.session.scalar(select(func.count()).select_from(Referral).where(where)) or 0
    if offset >= total:  # past the end there is nothing to fetch (and an offset beyond 64 bits fails in SQL)
        return [], int(total)
    rows = list(db.session.scalars(select(Referral).where(where)
                                   .order_by(Referral.created_at.desc(), Referral.id.desc())
                                   .offset(offset).limit(limit)))
    return rows, int(total)


def invite(actor: Any, name: Any, phone: Any, email: Any) -> Referral:
    """Record someone the actor invited (``record_prospect``); mailed an invitation when an email is given."""
    return record_prospect(me(actor, CREATE), name, phone, email)


def link_qr(actor: Any, fmt: str = "png") -> bytes:
    """The QR code of the actor's join link, PNG (for the screen) or SVG (for print); ``NotFound`` without one."""
    member = me(actor)
    if member.status not in REFERRER_STATUSES:
        raise NotFound("Only active members have a join link to share.")
    link = join_link(shared_code(member))
    return svg_of(link, scale=4) if fmt == "svg" else png_of(link, box_size=10)
