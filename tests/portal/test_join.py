"""``/join``: the application form, the ward picker, every message at once, duplicates, honeypot, limits, CSRF.

The geography is tests/conftest.py's ``tree`` (P1 > D1 > C1 > W1, W2 ...).
What is asserted is what a person sees (the page's words) and what is left
in the database (a pending member with a login, or nothing at all).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, MailMessage, Member, User
from app.security import has_permission
from app.services import joining
from tests.conftest import csrf_token_from, login
from tests.portal.conftest import text

PASSWORD = "a-long-enough-password"


def application(tree, **overrides) -> dict[str, str]:
    """A complete application for ward W1 (P1 > D1 > C1 > W1), as the browser posts it."""
    data = {
        "first_name": "Mutale", "last_name": "Zulu", "date_of_birth": "1992-03-14", "national_id": "123456/78/1",
        "phone": "0977000111", "email": "Mutale.Zulu@Example.org", "address": "Plot 4, Kasama",
        "unit_0": tree["p1"].id, "unit_1": tree["d1"].id, "unit_2": tree["c1"].id, "unit_3": tree["w1"].id,
        "password": PASSWORD, "confirm": PASSWORD, "consent": "y", "website": "",
    }
    data.update(overrides)
    return {k: str(v) for k, v in data.items() if v is not None}


def submit(client, data: dict[str, str], *, token: bool = True):
    form = dict(data)
    if token:
        form["csrf_token"] = csrf_token_from(text(client.get("/join")))
    db.session.commit()
    return client.post("/join", data=form)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def messages(page: str) -> dict[str, str]:
    """{field: message} as the page shows them under each field."""
    found = dict(re.findall(r'<div class="invalid-feedback" data-field="([a-z_]+)">([^<]+)</div>', page))
    ward = re.search(r'<div class="invalid-feedback d-block" id="unit-error">([^<]+)</div>', page)
    if ward:
        found["unit"] = ward.group(1)
    return found


def test_the_form_shows_every_field_and_the_top_level_of_the_ward_picker(client, tree):
    db.session.commit()
    page = text(client.get("/join"))
    for label in ("First name", "Last name", "Date of birth", "National ID number", "Phone number", "Email address",
                  "Address", "Password", "Password again", "privacy notice"):
        assert label in page
    assert "Province" in page and "District" in page and "Constituency" in page and "Ward" in page
    assert f'<option value="{tree["p1"].id}">Northern</option>' in page
    assert "Kasama" not in page  # districts come once a province is chosen
    assert 'hx-get="/join/units"' in page and "vendor/htmx/htmx.min.js" in page
    assert "(version 1)" in page


def test_joining_creates_a_pending_member_with_a_login_and_the_consent(client, tree):
    response = submit(client, application(tree))
    assert response.status_code == 302 and response.headers["Location"].endswith("/join/done")
    assert "Thank you for joining" in text(client.get("/join/done"))

    member = db.session.scalar(select(Member).where(Member.national_id == "123456/78/1"))
    assert (member.status, member.unit_id, member.email, member.phone) == (
        "pending", tree["w1"].id, "mutale.zulu@example.org", "+260977000111")
    assert member.consent_version == "1" and member.consent_at is not None
    assert member.email_verified_at is None
    user = db.session.scalar(select(User).where(User.member_id == member.id))
    assert user.email == "mutale.zulu@example.org" and user.active
    assert has_permission(user, "profile.read_own")
    [mail] = db.session.scalars(select(MailMessage).where(MailMessage.member_id == member.id)).all()
    assert mail.kind == "portal.verify-email" and mail.sensitive
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.join")) is not None

    # The new login signs in and sees a pending membership.
    assert login(client, "mutale.zulu@example.org", PASSWORD).status_code == 302
    assert "pending" in text(client.get("/")).lower()


def test_the_consent_version_comes_from_the_configuration(client, tree, app, monkeypatch):
    monkeypatch.setitem(app.config, "PRIVACY_NOTICE_VERSION", "2026-12")
    assert "version 2026-12" in text(client.get("/join"))
    assert "Version 2026-12" in text(client.get("/privacy"))
    submit(client, application(tree))
    assert db.session.scalar(select(Member.consent_version).where(Member.national_id == "123456/78/1")) == "2026-12"


def test_an_empty_form_shows_every_message_at_once_and_creates_nothing(client, tree):
    before = (count(Member), count(User))
    response = submit(client, {"website": ""})
    page = text(response)
    assert response.status_code == 422
    shown = messages(page)
    assert set(shown) >= {"first_name", "last_name", "date_of_birth", "national_id", "phone", "email", "address",
                          "password", "consent", "unit"}, shown
    assert shown["consent"].startswith("Please read the privacy notice")
    assert shown["unit"] == "Choose your ward."
    assert (count(Member), count(User)) == before


def test_bad_values_and_a_mismatched_confirmation_are_all_reported_together(client, tree):
    data = application(tree, date_of_birth="2999-01-01", phone="12", email="not-an-address", national_id="#",
                       confirm="something else", consent=None, unit_3="")
    response = submit(client, data)
    shown = messages(text(response))
    assert response.status_code == 422
    assert set(shown) == {"date_of_birth", "phone", "email", "national_id", "confirm", "consent", "unit"}, shown
    assert shown["confirm"] == "The two passwords differ."
    assert shown["unit"] == "Choose your ward too, not only the constituency."
    assert count(Member) == 0
    # What was typed comes back (except passwords); the ward picker keeps the chain chosen so far.
    page = text(response)
    assert 'value="Mutale"' in page and PASSWORD not in page
    assert f'<option value="{tree["c1"].id}" selected>' in page
    assert f'<option value="{tree["w1"].id}">' in page  # the ward list is filled, nothing chosen


def test_a_short_password_is_the_logins_own_rule(client, tree):
    shown = messages(text(submit(client, application(tree, password="short", confirm="short"))))
    assert shown == {"password": "A password needs at least 10 characters."}


@pytest.mark.parametrize("taken", ["national_id", "phone", "email"])
def test_a_duplicate_gets_one_message_that_names_nobody(client, tree, make_member, taken):
    other = {"national_id": "123456/78/1", "phone": "0977000111", "email": "mutale.zulu@example.org"}
    existing = make_member(tree["w4"], first_name="Secret", last_name="Holder", **{taken: other[taken]})
    response = submit(client, application(tree))
    page = text(response)
    assert response.status_code == 409
    assert joining.DUPLICATE_MESSAGE.replace("'", "&#39;") in page
    assert "Secret" not in page and "Holder" not in page and existing.membership_number not in page
    assert count(Member) == 1 and count(User) == 0


def test_an_email_already_used_by_a_login_is_a_duplicate_too(client, tree, make_user):
    make_user("mutale.zulu@example.org")
    response = submit(client, application(tree))
    assert response.status_code == 409 and "already registered" in text(response)
    assert count(Member) == 0


def test_the_honeypot_pretends_success_and_creates_nothing(client, tree):
    response = submit(client, application(tree, website="http://spam.example"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/join/done")
    assert (count(Member), count(User), count(MailMessage)) == (0, 0, 0)


def test_a_post_without_the_csrf_token_is_refused(client, tree):
    response = submit(client, application(tree), token=False)
    assert response.status_code == 400 and "did not come from this site" in text(response)
    assert count(Member) == 0


def test_joining_is_rate_limited_per_address(client, tree, app, monkeypatch):
    monkeypatch.setitem(app.config, "JOIN_RATE_LIMIT", "2 per minute")
    assert submit(client, {"website": ""}).status_code == 422
    assert submit(client, {"website": ""}).status_code == 422
    response = submit(client, application(tree))
    assert response.status_code == 429 and "Too many attempts" in text(response)
    assert count(Member) == 0


def test_the_units_endpoint_gives_the_children_as_options_and_resets_the_lists_below(client, tree):
    db.session.commit()
    response = client.get(f"/join/units?unit_0={tree['p1'].id}")
    page = text(response)
    assert response.status_code == 200
    assert re.findall(r'<option value="(\d+)">', page) == [str(tree["d1"].id), str(tree["d2"].id)]
    assert "Choose your district" in page
    assert 'id="unit_2" hx-swap-oob="innerHTML"' in page and 'id="unit_3" hx-swap-oob="innerHTML"' in page
    wards = text(client.get(f"/join/units?unit_2={tree['c1'].id}"))
    assert re.findall(r'<option value="(\d+)">([^<]+)</option>', wards) == [
        (str(tree["w1"].id), "Lukashya Ward 1"), (str(tree["w2"].id), "Lukashya Ward 2")]
    # A unit of another level, an unknown or malformed id: no options, never an error page.
    for query in (f"unit_1={tree['p1'].id}", "unit_0=99999999999999999999", "unit_0="):
        response = client.get(f"/join/units?{query}")
        assert response.status_code == 200 and '<option value="">' in text(response)
        assert not re.findall(r'<option value="\d+">', text(response))
    assert client.get("/join/units?unit_0=%00").status_code == 400  # a NUL is refused before any view
    assert client.get("/join/units").status_code == 400
    assert client.get(f"/join/units?unit_3={tree['w1'].id}").status_code == 400  # the last level has no children


def test_without_javascript_the_next_list_button_fills_the_picker(client, tree):
    data = {"unit_0": str(tree["p1"].id), "step": "units", "first_name": "Mutale"}
    page = text(submit(client, data))
    assert 'id="next-list"' in page and "<noscript>" in page
    assert f'<option value="{tree["d1"].id}">Kasama</option>' in page
    assert 'value="Mutale"' in page and not messages(page)
    assert count(Member) == 0


def test_a_signed_in_user_is_sent_home(client, staff):
    login(client, "coord@test.org")
    assert client.get("/join").status_code == 302
