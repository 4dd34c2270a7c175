"""Cards in bulk: issue or renew for many members, then one print sheet for the batch.

A batch is a background job (``app.services.jobs``, kind ``cards.batch``) so
the console shows a progress bar and offers the PDF as a download when done.
Who is in the batch:

- ``member_ids``: the members picked on the member list;
- ``unit_id``: every active member of that unit's subtree.

What happens to each (``mode``):

- ``issue``: members without a current card get one; the others are skipped;
- ``renew``: current cards are renewed, members without one get a new card;
- ``print``: nothing changes; current active cards are printed;
- ``print_or_issue``: current active cards are printed, members without one get
  a new card, printed with them (the API's ``POST /cards/print``).

Members outside the actor's area are never touched; members who are not
active, or whose card cannot be renewed, are listed in ``problems.csv``.
Members are worked through in id order and the job's params keep the last
id done and the cards made, so a job interrupted halfway resumes where it
stopped without issuing twice.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Member, MembershipCard, Unit, User
from app.models.cards import CURRENT_STATUSES
from app.security import can, scoped, subtree_unit_ids
from app.services import card_pdf, cards, jobs
from app.services.errors import ServiceError

KIND = "cards.batch"
MODES = ("issue", "renew", "print", "print_or_issue")
BATCH = 200


def start_batch(actor, *, mode: str, card_type: str = "standard", member_ids: list[int] | None = None,
                unit: Unit | None = None, base_url: str | None = None):
    """The batch as a queued job (flushed); the caller commits, then hands it to ``jobs.submit``."""
    if mode not in MODES:
        raise ServiceError(f"Unknown batch mode '{mode}'.", field="mode")
    cards.check_card_type(card_type)
    permission = "cards.read" if mode == "print" else "cards.create"
    if member_ids is None:
        if unit is None:
            raise ServiceError("Choose a unit, or select members on the member list.", field="unit")
        if not can(actor, permission, unit):
            raise ServiceError("That unit does not exist or is outside your area.", field="unit")
        what = f"everyone active in {unit.name}"
    else:
        member_ids = sorted({int(i) for i in member_ids})
        if not member_ids:
            raise ServiceError("Select at least one member.", field="member_ids")
        what = f"{len(member_ids)} selected member{'s' if len(member_ids) != 1 else ''}"
    verb = {"issue": "Issue cards", "renew": "Renew or issue cards", "print": "Print cards",
            "print_or_issue": "Print or issue cards"}[mode]
    job = jobs.create_job(
        actor, KIND,
        {"mode": mode, "card_type": card_type, "member_ids": member_ids, "unit_id": unit.id if unit else None,
         "base_url": base_url, "last_member_id": 0, "card_ids": [], "problems": []},
        title=f"{verb} for {what}", unit_id=unit.id if unit else None,
    )
    return job


def _members_stmt(actor, params: dict[str, Any]):
    mode = params["mode"]
    permission = "cards.read" if mode == "print" else "cards.create"
    stmt = select(Member).where(Member.deleted_at.is_(None))
    if params.get("member_ids") is not None:
        stmt = stmt.where(Member.id.in_(params["member_ids"]))
    else:
        unit = db.session.get(Unit, params["unit_id"])
        if unit is None:
            raise ServiceError("The unit of this batch no longer exists.")
        stmt = stmt.where(Member.unit_id.in_(subtree_unit_ids(unit)), Member.status == "active")
    return scoped(stmt, actor, permission, Member)


def _save(ctx: jobs.JobContext, **changes: Any) -> None:
    params = dict(ctx.job.params)
    params.update(changes)
    ctx.job.params = params  # a new dict: JSON columns only notice reassignment
    ctx.params = params


@jobs.handler(KIND)
def run_batch(ctx: jobs.JobContext) -> dict:
    params = ctx.params
    actor = db.session.get(User, ctx.job.created_by_id) if ctx.job.created_by_id else None
    if actor is None or not actor.active:
        raise ServiceError("The user who started this batch can no longer act.")
    mode, card_type = params["mode"], params["card_type"]
    base = _members_stmt(actor, params)

    total = db.session.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    card_ids: list[int] = list(params.get("card_ids") or [])
    problems: list[list[str]] = list(params.get("problems") or [])
    last_id = int(params.get("last_member_id") or 0)
    done = db.session.scalar(select(func.count()).select_from(base.where(Member.id <= last_id).subquery())) or 0
    skipped = int(params.get("skipped") or 0)
    ctx.progress(done, total * 2, errors=len(problems), message="Issuing cards…" if mode != "print" else "")
    today = date.today()
    while True:
        batch = list(db.session.scalars(
            base.where(Member.id > last_id).order_by(Member.id).limit(BATCH).options(selectinload(Member.unit))
        ))
        if not batch:
            break
        current = {}
        for card in db.session.scalars(select(MembershipCard).where(
                MembershipCard.member_id.in_([m.id for m in batch]),
                MembershipCard.status.in_(CURRENT_STATUSES + ("expired",))).order_by(MembershipCard.id)):
            if card.member_id not in current or card.status in CURRENT_STATUSES:
                current[card.member_id] = card
        to_issue = []
        for member in batch:
            try:
                with db.session.begin_nested():
                    action = _action(mode, current.get(member.id), today)
                    card = current.get(member.id)
                    if action == "skip":
                        skipped += 1
                    elif action == "print":
                        card_ids.append(card.id)
                    elif action == "renew":
                        cards.renew_card(actor, card, "Batch renewal")
                        card_ids.append(card.id)
                    else:
                        cards.check_member_active(member, "issuing a card")
                        to_issue.append(member)
            except ServiceError as exc:
                problems.append([member.membership_number, member.full_name, exc.message])
        if to_issue:
            try:
                with db.session.begin_nested():
                    card_ids.extend(c.id for c in cards.issue_cards(actor, to_issue, card_type, reason="Batch"))
            except ServiceError:
                for member in to_issue:  # one bad apple: issue one by one to name it
                    try:
                        with db.session.begin_nested():
                            card_ids.append(cards.issue_card(actor, member, card_type, reason="Batch").id)
                    except ServiceError as exc:
                        problems.append([member.membership_number, member.full_name, exc.message])
        last_id = batch[-1].id
        done += len(batch)
        _save(ctx, last_member_id=last_id, card_ids=card_ids, problems=problems, skipped=skipped)
        ctx.progress(done, total * 2 if total else None, errors=len(problems))

    if problems:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["membership_number", "name", "problem"])
        writer.writerows(problems)
        ctx.add_file("problems.csv", "text/csv", out.getvalue().encode("utf-8"))
    printed = 0
    if card_ids:
        ctx.progress(total, total + len(card_ids), message="Drawing the print sheet…")
        start = total

        def progress(n: int) -> None:
            ctx.progress(start + n, total + len(card_ids))

        fd, path = tempfile.mkstemp(suffix=".pdf", dir=jobs.files_dir())
        os.close(fd)
        try:
            printed = card_pdf.render_print_sheet(_cards_in_order(card_ids), path, base_url=params.get("base_url"),
                                                  progress=progress)
            ctx.add_file(f"cards-{today.isoformat()}-{ctx.job.id}.pdf", "application/pdf", source=path)
        finally:
            if os.path.exists(path):
                os.remove(path)
    ctx.progress(total + len(card_ids), total + len(card_ids), errors=len(problems), message="")
    return {"members": total, "cards_printed": printed, "skipped": skipped, "problems": len(problems)}


def _action(mode: str, card: MembershipCard | None, today: date) -> str:
    """What a batch does for a member whose latest relevant card is ``card``: issue, renew, print or skip."""
    status = card.effective_status(today) if card is not None else None
    if mode == "print":
        return "print" if status == "active" else "skip"
    if status is None or (status == "expired" and mode in ("issue", "print_or_issue")):
        return "issue"  # issue_cards writes an overdue current card down as expired
    if status == "suspended":
        raise ServiceError(f"their card {card.card_number} is suspended; reactivate it first")
    if mode == "print_or_issue":
        return "print"  # an active card: printed as it is
    if mode == "issue":
        return "skip"  # already has an active card
    if card.card_type == "lifetime":
        return "print"  # nothing to renew
    return "renew"


def _cards_in_order(card_ids: list[int], batch: int = 500):
    """The cards by id, in the order given, a batch at a time (memory stays flat).

    Yielded as detached copies holding just what printing needs: the job
    commits its progress while the sheet is drawn, which would expire
    session objects and reload each card with a query of its own.
    """
    columns = (MembershipCard.id, MembershipCard.member_id, MembershipCard.card_number, MembershipCard.card_type,
               MembershipCard.issued_on, MembershipCard.expires_on)
    for start in range(0, len(card_ids), batch):
        ids = card_ids[start:start + batch]
        rows = {row.id: row for row in db.session.execute(select(*columns).where(MembershipCard.id.in_(ids)))}
        for card_id in ids:
            row = rows.get(card_id)
            if row is not None:
                yield MembershipCard(**row._asdict())
