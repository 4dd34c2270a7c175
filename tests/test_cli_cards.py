"""`flask cards ...`: keys, rotation and retirement, expiry, print sheets."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.extensions import db
from app.services import card_keys, cards


@pytest.fixture()
def fresh_keys(app, tmp_path):
    old = app.config["CARD_KEYS_DIR"]
    app.config["CARD_KEYS_DIR"] = str(tmp_path / "keys")
    yield tmp_path / "keys"
    app.config["CARD_KEYS_DIR"] = old


def test_rotate_then_retire(runner, ctx, fresh_keys, tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    old_token = cards.card_token(card)
    old_kid = card_keys.signing_key().kid_hex
    result = runner.invoke(args=["cards", "rotate-key"])
    assert result.exit_code == 0, result.output
    new_kid = result.output.split("New signing key ")[1].split(".")[0]
    listing = runner.invoke(args=["cards", "keys"]).output
    assert f"{new_kid}  active" in listing and f"{old_kid}  verifies" in listing
    assert cards.verify_token(old_token).status == "valid"
    refused = runner.invoke(args=["cards", "retire-key", new_kid])
    assert refused.exit_code != 0 and "active key" in refused.output
    retired = runner.invoke(args=["cards", "retire-key", old_kid])
    assert retired.exit_code == 0 and f"Key {old_kid} retired" in retired.output
    assert cards.verify_token(old_token).status == "invalid"
    assert cards.verify_token(cards.card_token(card)).status == "valid"
    assert "retired" in runner.invoke(args=["cards", "keys"]).output
    assert runner.invoke(args=["cards", "retire-key", "00000000"]).exit_code != 0


def test_expire(runner, ctx, tree, make_member):
    card = cards.issue_card(None, make_member(tree["w1"]))
    card.expires_on = date.today() - timedelta(days=1)
    db.session.flush()
    result = runner.invoke(args=["cards", "expire"])
    assert result.exit_code == 0 and "1 card(s) marked expired" in result.output
    assert card.status == "expired"


def test_print_a_units_cards(runner, ctx, tree, make_member, tmp_path):
    for _ in range(3):
        cards.issue_card(None, make_member(tree["w1"]))
    cards.issue_card(None, make_member(tree["w4"]))
    out = tmp_path / "w1.pdf"
    result = runner.invoke(args=["cards", "print", str(out), "--unit", "C1"])
    assert result.exit_code == 0, result.output
    assert "3 card(s) written" in result.output and out.read_bytes().startswith(b"%PDF")
    assert runner.invoke(args=["cards", "print", str(out), "--unit", "NOPE"]).exit_code != 0
