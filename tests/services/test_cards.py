"""Membership cards: numbers, lifecycle, the member-status hook, and the signed credential."""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, CardTransaction, MembershipCard
from app.services import card_keys, cards
from app.services import members as member_service
from app.services.errors import Forbidden, NotFound, ServiceError

# --- card numbers ------------------------------------------------------------------------


def test_luhn_digit_matches_the_standard_examples():
    assert cards.luhn_digit("7992739871") == 3  # the textbook example 79927398713
    assert cards.luhn_digit("0") == 0
    # Every single-digit typo changes the check digit.
    base = "2026000123"
    check = cards.luhn_digit(base)
    for i in range(len(base)):
        for d in "0123456789":
            if d != base[i]:
                assert cards.luhn_digit(base[:i] + d + base[i + 1:]) != check


def test_card_number_format_and_parse(ctx):
    number = cards.format_card_number("M", 2026, 123)
    assert number.startswith("M-2026-000123-")
    assert cards.parse_card_number(number) == ("M", 2026, 123)
    assert cards.parse_card_number(" m-2026-000123-" + number[-1] + " ") == ("M", 2026, 123)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(cards.CardNumberError, match="wrong check digit"):
        cards.parse_card_number(wrong)
    # A transposition of adjacent digits is caught too.
    swapped = "M-2026-000213-" + number[-1]
    with pytest.raises(cards.CardNumberError, match="check digit"):
        cards.parse_card_number(swapped)
    for bad in ("", "M2026000123", "M-26-000123-1", "M-2026-123-1", "TOOLONGPREFIX-2026-000123-1", "M-2026-00012A-1"):
        with pytest.raises(cards.CardNumberError, match="not a card number"):
            cards.parse_card_number(bad)


def test_numbers_are_sequential_with_prefix(app, tree, make_member):
    app.config["CARD_NUMBER_PREFIX"] = "PF"
    try:
        first = cards.issue_card(None, make_member(tree["w1"]))
        second = cards.issue_card(None, make_member(tree["w1"]))
    finally:
        app.config["CARD_NUMBER_PREFIX"] = "M"
    p1, y1, s1 = cards.parse_card_number(first.card_number)
    p2, y2, s2 = cards.parse_card_number(second.card_number)
    assert (p1, y1) == ("PF", date.today().year) and s2 == s1 + 1 and p2 == "PF"


# --- lifecycle ---------------------------------------------------------------------------


def _types(card):
    return [t.type for t in db.session.scalars(
        select(CardTransaction).where(CardTransaction.card_id == card.id).order_by(CardTransaction.id))]


def test_issue_sets_dates_type_and_history(tree, staff, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(staff["admin"], member, "premium")
    today = date.today()
    assert card.status == "active" and card.card_type == "premium"
    assert card.issued_on == today and card.expires_on == cards.add_months(today, 12)
    assert card.issued_by_id == staff["admin"].id and card.issued_at is not None
    assert card.unit_id == tree["w1"].id
    tx = card.transactions[0]
    assert (tx.type, tx.from_status, tx.to_status, tx.actor_id) == ("issued", None, "active", staff["admin"].id)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "card.issued"))
    assert entry.unit_id == tree["w1"].id and entry.object_id == str(card.id)


def test_lifetime_cards_never_expire(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]), "lifetime")
    assert card.expires_on is None
    assert card.effective_status(date(2999, 1, 1)) == "active"
    with pytest.raises(ServiceError, match="lifetime"):
        cards.renew_card(None, card)


def test_unknown_card_type_is_refused(tree, make_member):
    with pytest.raises(ServiceError, match="Unknown card type") as err:
        cards.issue_card(None, make_member(tree["w1"]), "gold")
    assert err.value.field == "card_type"


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_issue_refused_for_members_who_are_not_active(tree, make_member, status):
    member = make_member(tree["w1"], status="pending")
    if status == "suspended":
        member_service.change_status(None, member, "active", "ok")
        member_service.change_status(None, member, "suspended", "unpaid")
    with pytest.raises(ServiceError) as err:
        cards.issue_card(None, member)
    assert f"is {status}" in err.value.message and "only active members" in err.value.message
    assert err.value.status == 409


def test_one_current_card_per_member(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    with pytest.raises(ServiceError, match="already has an active card"):
        cards.issue_card(None, member)
    cards.suspend_card(None, card, "lost wallet")
    with pytest.raises(ServiceError, match="reactivate or revoke"):
        cards.issue_card(None, member)
    cards.revoke_card(None, card, "gone")
    again = cards.issue_card(None, member)
    assert again.card_number != card.card_number


def test_the_database_refuses_two_current_cards(tree, make_member):
    from sqlalchemy.exc import IntegrityError

    member = make_member(tree["w1"])
    cards.issue_card(None, member)
    db.session.add(MembershipCard(member=member, card_number="X-2026-000001-9", status="suspended",
                                  expires_on=date.today()))
    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.flush()


def test_expired_current_card_makes_way_for_a_new_one(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    card.expires_on = date.today() - timedelta(days=1)
    db.session.flush()
    assert card.effective_status() == "expired"
    new = cards.issue_card(None, member)
    assert card.status == "expired" and _types(card) == ["issued", "expired"]
    assert new.status == "active"


def test_renew_extends_from_the_later_of_today_and_expiry(tree, make_member):
    today = date(2026, 3, 15)
    card = cards.issue_card(None, make_member(tree["w1"]))
    card.expires_on = date(2026, 6, 30)
    cards.renew_card(None, card, today=today)
    assert card.expires_on == date(2027, 6, 30)  # still running: from its expiry
    card.expires_on = date(2026, 1, 31)
    card.status = "expired"
    cards.renew_card(None, card, "paid", today=today)
    assert card.expires_on == date(2027, 3, 15) and card.status == "active"  # run out: from today
    assert card.renewed_at is not None
    assert _types(card) == ["issued", "renewed", "renewed"]
    assert card.transactions[0].expires_on == date(2027, 3, 15)


def test_renew_uses_the_types_period(app, tree, make_member):
    app.config["CARD_MONTHS"] = "standard=12,premium=24"
    try:
        card = cards.issue_card(None, make_member(tree["w1"]), "premium")
        assert card.expires_on == cards.add_months(date.today(), 24)
        before = card.expires_on
        cards.renew_card(None, card)
        assert card.expires_on == cards.add_months(before, 24)
    finally:
        app.config["CARD_MONTHS"] = "standard=12,premium=12"


def test_add_months_clamps_month_ends():
    assert cards.add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert cards.add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert cards.add_months(date(2026, 11, 20), 14) == date(2028, 1, 20)


def test_suspend_reactivate_revoke(tree, staff, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    with pytest.raises(ServiceError, match="reason"):
        cards.suspend_card(staff["admin"], card, "  ")
    cards.suspend_card(staff["admin"], card, "dues")
    assert card.status == "suspended"
    with pytest.raises(ServiceError, match="is suspended, so it cannot be suspended"):
        cards.suspend_card(staff["admin"], card, "again")
    cards.reactivate_card(staff["admin"], card, "paid")
    assert card.status == "active"
    cards.revoke_card(staff["admin"], card, "fraud")
    assert card.status == "revoked"
    for fn in (cards.suspend_card, cards.reactivate_card, cards.revoke_card, cards.reissue_card):
        with pytest.raises(ServiceError) as err:
            fn(staff["admin"], card, "x")
        assert err.value.status == 409 and "revoked" in err.value.message
    with pytest.raises(ServiceError, match="revoked"):
        cards.renew_card(staff["admin"], card)
    history = card.transactions
    assert [(t.type, t.from_status, t.to_status, t.reason) for t in reversed(history)] == [
        ("issued", None, "active", ""), ("suspended", "active", "suspended", "dues"),
        ("reactivated", "suspended", "active", "paid"), ("revoked", "active", "revoked", "fraud"),
    ]
    assert all(t.actor_id == staff["admin"].id for t in history[:3])


def test_reissue_revokes_the_old_card_and_keeps_type_and_expiry(tree, make_member):
    member = make_member(tree["w1"])
    old = cards.issue_card(None, member, "premium")
    new = cards.reissue_card(None, old, "lost at the market")
    assert old.status == "revoked" and new.status == "active"
    assert new.card_number != old.card_number and new.replaces_id == old.id
    assert (new.card_type, new.expires_on) == ("premium", old.expires_on)
    assert old.transactions[0].reason.startswith(f"Replaced by {new.card_number}")
    assert _types(new) == ["reissued"]
    assert cards.current_card(member) is new
    with pytest.raises(ServiceError, match="reason"):
        cards.reissue_card(None, new, "")


def test_change_card_status_maps_to_transitions(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    cards.change_card_status(None, card, "suspended", "x")
    cards.change_card_status(None, card, "active", "y")
    with pytest.raises(ServiceError, match="by itself"):
        cards.change_card_status(None, card, "expired", "z")
    with pytest.raises(ServiceError, match="Unknown card status"):
        cards.change_card_status(None, card, "lost", "z")
    cards.change_card_status(None, card, "revoked", "z")
    assert card.status == "revoked"


def test_actor_outside_the_members_area_is_told_it_does_not_exist(tree, staff, make_member):
    member = make_member(tree["w4"])
    with pytest.raises(NotFound):
        cards.issue_card(staff["coordinator"], member)
    card = cards.issue_card(None, member)
    with pytest.raises(NotFound):
        cards.suspend_card(staff["coordinator"], card, "x")
    assert card.status == "active"


def test_coordinator_cannot_issue_even_in_their_ward(tree, staff, make_member):
    member = make_member(tree["w1"])
    with pytest.raises(Forbidden, match="may not issue or change cards"):
        cards.issue_card(staff["coordinator"], member)
    card = cards.issue_card(None, member)
    with pytest.raises(Forbidden):
        cards.revoke_card(staff["coordinator"], card, "x")
    assert card.status == "active"


# --- member status drags the card along -------------------------------------------------


def test_member_suspension_and_return_follow_the_card(tree, staff, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    member_service.change_status(staff["coordinator"], member, "suspended", "dues unpaid")
    assert card.status == "suspended"
    assert card.transactions[0].reason == "Member suspended: dues unpaid"
    assert card.transactions[0].actor_id == staff["coordinator"].id
    member_service.change_status(staff["coordinator"], member, "active", "paid")
    assert card.status == "active"


@pytest.mark.parametrize("final", ["expelled", "deceased", "resigned"])
def test_member_leaving_revokes_the_card(tree, make_member, final):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    member_service.change_status(None, member, final, "reason")
    assert card.status == "revoked"


def test_suspended_card_of_expelled_member_is_revoked(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    member_service.change_status(None, member, "suspended", "inquiry")
    member_service.change_status(None, member, "expelled", "decided")
    assert card.status == "revoked"
    assert _types(card) == ["issued", "suspended", "revoked"]


def test_lapsing_leaves_the_card_alone(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    member_service.change_status(None, member, "lapsed", "no renewal")
    assert card.status == "active"
    with pytest.raises(ServiceError, match="is lapsed"):
        cards.renew_card(None, card)


def test_expire_cards_writes_down_expiry(tree, make_member):
    a = cards.issue_card(None, make_member(tree["w1"]))
    b = cards.issue_card(None, make_member(tree["w1"]))
    a.expires_on = date.today() - timedelta(days=3)
    db.session.flush()
    assert cards.expire_cards() == 1
    assert (a.status, b.status) == ("expired", "active")
    assert cards.expire_cards() == 0


def test_status_clause_counts_overdue_active_cards_as_expired(tree, make_member):
    a = cards.issue_card(None, make_member(tree["w1"]))
    b = cards.issue_card(None, make_member(tree["w1"]))
    a.expires_on = date.today() - timedelta(days=1)
    db.session.flush()
    ids = {s: set(db.session.scalars(select(MembershipCard.id).where(cards.status_clause(s)))) for s in ("active", "expired")}
    assert a.id in ids["expired"] and a.id not in ids["active"] and b.id in ids["active"]


# --- the signed credential ---------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_token_is_short_url_safe_and_holds_no_personal_data(tree, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", phone="0977123456")
    card = cards.issue_card(None, member)
    token = cards.card_token(card)
    assert len(token) <= 110
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = _raw(token)
    assert len(raw) == 15 + 64
    for secret in (b"Chanda", b"Mwansa", b"977123456", member.membership_number.encode()):
        assert secret not in raw
    # The payload is exactly: version, key id, prefix, year, sequence, expiry; the rest is the signature.
    assert raw[:-64] == cards.tokens.token_payload(card.card_number, card.expires_on, raw[1:5])
    decoded = cards.decode_token(token)
    assert decoded.card_number == card.card_number and decoded.expires_on == card.expires_on


def test_verify_valid_then_each_status(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    token = cards.card_token(card)
    result = cards.verify_token(token)
    assert (result.status, result.card, result.member) == ("valid", card, member)
    assert result.message == f"Card {card.card_number} is valid until {card.expires_on.isoformat()}."
    card.expires_on = date(2026, 1, 31)
    db.session.flush()
    result = cards.verify_token(token, today=date(2026, 2, 1))
    assert result.status == "expired"
    assert result.message == f"Card {card.card_number} expired on 2026-01-31."
    card.expires_on = cards.add_months(date.today(), 12)
    cards.suspend_card(None, card, "x")
    assert cards.verify_token(token).status == "suspended"
    cards.revoke_card(None, card, "x")
    result = cards.verify_token(token)
    assert result.status == "revoked" and result.card is card and "revoked" in result.message


def test_renewed_card_verifies_with_its_old_printed_code(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    token = cards.card_token(card)
    card.expires_on = date.today() - timedelta(days=1)
    cards.renew_card(None, card)
    assert cards.verify_token(token).status == "valid"


def test_lifetime_and_unknown(tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]), "lifetime")
    result = cards.verify_token(cards.card_token(card))
    assert result.status == "valid" and "lifetime" in result.message
    token = cards.card_token(card)
    db.session.delete(card)
    db.session.flush()
    result = cards.verify_token(token)
    assert (result.status, result.card, result.member) == ("unknown", None, None)
    assert card.card_number in result.message


def test_deleted_members_card_does_not_verify_as_valid(tree, make_member):
    member = make_member(tree["w1"])
    card = cards.issue_card(None, member)
    member_service.delete_member(None, member)
    assert cards.verify_token(cards.card_token(card)).status == "revoked"


def test_tampered_truncated_reencoded_and_foreign_tokens_are_invalid(tree, make_member):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    card = cards.issue_card(None, make_member(tree["w1"]))
    token = cards.card_token(card)
    raw = _raw(token)
    variants = {
        "flipped payload byte": _b64(raw[:10] + bytes([raw[10] ^ 1]) + raw[11:]),
        "flipped signature byte": _b64(raw[:-1] + bytes([raw[-1] ^ 0x80])),
        "truncated": token[:-4],
        "one char short": token[:-1],
        "extended": token + "A",
        "padded": token + "=" * (-len(token) % 4 or 4),
        "standard base64": base64.b64encode(raw).decode(),
        "hex": raw.hex(),
        "empty": "",
        "spaces": " " + token,
        "non-ascii": token[:-1] + "é",
        "version 2": _b64(bytes([2]) + raw[1:]),
        "huge": "A" * 5000,
        "json": json.dumps({"card": card.card_number}),
    }
    # Same card, other key: a perfect signature by somebody else.
    other = Ed25519PrivateKey.generate()
    payload = cards.tokens.token_payload(card.card_number, card.expires_on, card_keys.key_id(other.public_key()))
    variants["foreign key"] = _b64(payload + other.sign(cards.tokens.SIGNING_CONTEXT + payload))
    # Our key id, their signature.
    payload = cards.tokens.token_payload(card.card_number, card.expires_on, card_keys.signing_key().kid)
    variants["forged with our key id"] = _b64(payload + other.sign(cards.tokens.SIGNING_CONTEXT + payload))
    # A later expiry written into a genuine token.
    later = cards.tokens.token_payload(card.card_number, date(2099, 1, 1), card_keys.signing_key().kid)
    variants["extended expiry"] = _b64(later + raw[-64:])
    for name, bad in variants.items():
        result = cards.verify_token(bad)
        assert (result.status, result.card, result.member) == ("invalid", None, None), name
        assert result.message
    for junk in (None, 42, b"bytes", ["list"], {"token": token}):
        assert cards.verify_token(junk).status == "invalid"  # type: ignore[arg-type]
    assert cards.verify_token(token).status == "valid"


def test_trailing_bits_reencoding_is_refused(tree, make_member):
    """base64 lets the last character carry unused bits; only the canonical spelling is accepted."""
    card = cards.issue_card(None, make_member(tree["w1"]))
    token = cards.card_token(card)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + c for c in alphabet if c != token[-1]
                and _raw(token[:-1] + c) == _raw(token)]
    assert variants, "79 bytes leave spare bits in the last character"
    for bad in variants:
        assert cards.verify_token(bad).status == "invalid"


# --- keys --------------------------------------------------------------------------------


@pytest.fixture()
def fresh_keys(app, tmp_path):
    old = app.config["CARD_KEYS_DIR"]
    app.config["CARD_KEYS_DIR"] = str(tmp_path / "keys")
    yield tmp_path / "keys"
    app.config["CARD_KEYS_DIR"] = old


def test_keys_are_created_on_first_use_privately(fresh_keys, tree, make_member):
    assert not (fresh_keys / "keys.json").exists()
    card = cards.issue_card(None, make_member(tree["w1"]))
    cards.card_token(card)
    path = fresh_keys / "keys.json"
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert data["active"] in data["keys"]


def test_rotation_keeps_old_cards_valid_until_retired(fresh_keys, tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    old_token = cards.card_token(card)
    old_kid = card_keys.signing_key().kid_hex
    new = card_keys.rotate()
    assert new.kid_hex != old_kid and card_keys.signing_key().kid_hex == new.kid_hex
    new_token = cards.card_token(card)
    assert cards.decode_token(new_token).key_id == new.kid_hex
    assert cards.verify_token(old_token).status == "valid"
    assert cards.verify_token(new_token).status == "valid"
    with pytest.raises(ServiceError, match="active key"):
        card_keys.retire(new.kid_hex)
    card_keys.retire(old_kid)
    result = cards.verify_token(old_token)
    assert result.status == "invalid" and "retired" in result.message
    assert cards.verify_token(new_token).status == "valid"
    with pytest.raises(ServiceError, match="no key"):
        card_keys.retire("deadbeef")


def test_rotation_by_another_process_is_picked_up(fresh_keys, tree, make_member, monkeypatch):
    """A key written to the file by someone else verifies at once (unknown ids re-read the file)."""
    card = cards.issue_card(None, make_member(tree["w1"]))
    card_keys.signing_key()
    data = json.loads((fresh_keys / "keys.json").read_text())
    kid = card_keys._new_entry(data)
    card_keys._write(fresh_keys, data)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["keys"][kid]["private_key"]))
    payload = cards.tokens.token_payload(card.card_number, card.expires_on, bytes.fromhex(kid))
    token = _b64(payload + private.sign(cards.tokens.SIGNING_CONTEXT + payload))
    assert cards.verify_token(token).status == "valid"


def test_configured_signing_key(app, fresh_keys, tree, make_member):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    app.config["CARD_SIGNING_KEY"] = card_keys._private_raw(private)
    try:
        card_keys._cache.clear()
        card = cards.issue_card(None, make_member(tree["w1"]))
        token = cards.card_token(card)
        assert cards.decode_token(token).key_id == card_keys.key_id(private.public_key()).hex()
        assert cards.verify_token(token).status == "valid"
        assert not (fresh_keys / "keys.json").exists()
    finally:
        app.config["CARD_SIGNING_KEY"] = None
        card_keys._cache.clear()
    # Without it the token no longer verifies, unless its public key is configured for verification.
    assert cards.verify_token(token).status == "invalid"
    app.config["CARD_VERIFY_KEYS"] = card_keys._public_raw(private.public_key())
    try:
        card_keys._cache.clear()
        assert cards.verify_token(token).status == "valid"
    finally:
        app.config["CARD_VERIFY_KEYS"] = None
        card_keys._cache.clear()


def test_verification_url_uses_the_public_url(app, tree, make_member, monkeypatch):
    card = cards.issue_card(None, make_member(tree["w1"]))
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://members.example.org")
    url = cards.verification_url(card)
    assert url.startswith("https://members.example.org/verify/")
    assert cards.verify_token(url.rsplit("/", 1)[1]).status == "valid"
    assert len(url) < 150
