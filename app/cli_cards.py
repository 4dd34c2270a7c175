"""`flask cards ...`: signing keys, expiry bookkeeping and print sheets from a shell.

- ``flask cards keys``: the keys that sign and verify card codes;
- ``flask cards rotate-key``: a new signing key (cards already printed keep verifying);
- ``flask cards retire-key KEY_ID``: stop accepting codes signed by an old key;
- ``flask cards expire``: expire cards past their date and grace period, lapse their members;
- ``flask cards print OUT.pdf --unit CODE``: the print sheet of a unit's active cards.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import Member, MembershipCard, Unit
from app.security import subtree_unit_ids
from app.models.base import utcnow
from app.services import card_keys, card_pdf, cards, lifecycle
from app.services.errors import AccessDenied, ServiceError

group = AppGroup("cards", help="Membership cards: signing keys, expiry, print sheets.")


@group.command("keys")
def keys_command() -> None:
    """List the card signing keys."""
    ring = card_keys.keyring(refresh=True)
    if not ring.keys:
        click.echo("No keys yet: the first one is made when the first card code is signed.")
    for key in card_keys.list_keys():
        state = "active" if ring.active is key else ("retired " + key.retired_at if key.retired_at else "verifies")
        click.echo(f"{key.kid_hex}  {state:<28} created {key.created_at or '-'}  ({key.source})")


@group.command("rotate-key")
def rotate_key_command() -> None:
    """Make a new signing key; codes signed by older keys stay valid until those are retired."""
    card_keys.signing_key()  # make sure there is a first key to rotate from
    try:
        key = card_keys.rotate()
    except (ServiceError, AccessDenied) as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"New signing key {key.kid_hex}. Older keys still verify; retire them with "
               "`flask cards retire-key KEY_ID` once their cards are replaced.")


@group.command("retire-key")
@click.argument("kid")
def retire_key_command(kid: str) -> None:
    """Stop accepting card codes signed by key KID (those cards then verify as invalid)."""
    try:
        key = card_keys.retire(kid)
    except (ServiceError, AccessDenied) as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Key {key.kid_hex} retired at {key.retired_at}.")


@group.command("expire")
def expire_command() -> None:
    """Expire active cards past their expiry date and grace period, lapse their members (safe any time).

    The scheduler's ``cards.expire`` sweep (app.services.lifecycle.expire_sweep), run now.
    """
    counts = lifecycle.expire_sweep(utcnow())
    db.session.commit()
    click.echo(f"{counts['cards_expired']} card(s) marked expired; "
               f"{counts['members_lapsed']} member(s) lapsed.")


@group.command("print")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--unit", "unit_code", required=True, help="Code of the unit (its whole subtree is printed).")
@click.option("--base-url", default=None, help="Public URL for the QR codes (default: MUSTER_PUBLIC_URL).")
def print_command(out: str, unit_code: str, base_url: str | None) -> None:
    """Write the print sheet of the active cards of a unit's members to OUT."""
    units = db.session.scalars(select(Unit).where(Unit.code == unit_code)).all()
    if len(units) != 1:
        raise click.ClickException(f"{'No' if not units else 'More than one'} unit has the code {unit_code}.")
    stmt = (select(MembershipCard).join(Member, Member.id == MembershipCard.member_id)
            .where(Member.unit_id.in_(subtree_unit_ids(units[0])), Member.deleted_at.is_(None),
                   cards.status_clause("active"))
            .order_by(MembershipCard.id))
    count = card_pdf.render_print_sheet(db.session.scalars(stmt).yield_per(500), out, base_url=base_url)
    click.echo(f"{count} card(s) written to {out}.")


def register(app: Flask) -> None:
    app.cli.add_command(group)
