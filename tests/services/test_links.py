"""One-time links: signed, expiring, single use, one purpose, the newest replaces the older."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import OneTimeLink
from app.services import links


def test_a_link_works_once(staff):
    token = links.issue("reset-password", user=staff["member"], hours=2)
    assert links.check("reset-password", token).user is staff["member"]
    assert links.redeem("reset-password", token).used_at is not None
    with pytest.raises(links.LinkUsed, match="used already"):
        links.redeem("reset-password", token)


def test_a_link_expires(staff):
    token = links.issue("reset-password", user=staff["member"], hours=2)
    link = db.session.query(OneTimeLink).one()
    link.expires_at -= timedelta(hours=3)
    with pytest.raises(links.LinkExpired, match="expired") as raised:
        links.check("reset-password", token)
    assert raised.value.status == 410


@pytest.mark.parametrize("mangle", [lambda t: t[:-3], lambda t: t + "x", lambda t: "", lambda t: "a.b",
                                    lambda t: t.replace(t[5], "A" if t[5] != "A" else "B", 1)])
def test_a_changed_or_cut_link_is_invalid(staff, mangle):
    token = links.issue("activate", user=staff["member"], hours=2)
    with pytest.raises(links.LinkInvalid, match="not valid") as raised:
        links.check("activate", mangle(token))
    assert raised.value.status == 400


def test_a_link_for_one_purpose_does_nothing_for_another(staff):
    token = links.issue("verify-email", user=staff["member"], hours=2)
    with pytest.raises(links.LinkInvalid):
        links.check("reset-password", token)


def test_a_newer_link_replaces_the_older_one(staff):
    first = links.issue("reset-password", user=staff["member"], hours=2)
    second = links.issue("reset-password", user=staff["member"], hours=2)
    other = links.issue("reset-password", user=staff["admin"], hours=2)
    with pytest.raises(links.LinkUsed, match="newer link"):
        links.check("reset-password", first)
    assert links.check("reset-password", second).user is staff["member"]
    assert links.check("reset-password", other).user is staff["admin"]


def test_the_database_holds_no_usable_secret(staff):
    token = links.issue("reset-password", user=staff["member"], hours=2)
    row = db.session.query(OneTimeLink).one()
    assert row.nonce_hash not in token and len(row.nonce_hash) == 64
