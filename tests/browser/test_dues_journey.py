"""Issue 14's "Done when", as a member meets it: paying dues online on a phone, and Stripe's webhook, twice at once.

The member signs in on a 360 x 740 phone, opens Dues, presses the tier's
button ("Renew online" for a member whose card runs out next month, "Pay
online" for one without a card yet) and is sent to the Stripe stand-in's hosted checkout page
(tests/stripe_standin.py, ``/pay/<session id>``), pays there and comes back
to ``/dues/done?session_id=...``, which re-reads the session from the
stand-in and shows the payment completed with its receipt number. Then the
signed ``checkout.session.completed`` event for that session is POSTed to
the live server's ``/webhooks/stripe`` by two threads released together
(the same body, the same ``Stripe-Signature``): both answer 200, and the
card's valid-until has moved exactly once, as the card page, the payments
list (one completed payment, its receipt number) and the receipt PDF show.

In the second journey Stripe's webhook arrives before the member is back
(the stand-in delivers it, signed, while answering the Pay button, before
its redirect): the return page already shows the payment completed.

The live server (``live_server``) is werkzeug in a thread of this process,
serving this ``app``: its Stripe settings are pointed at the stand-in with
``monkeypatch`` on ``app.config``, and MUSTER_PUBLIC_URL (Stripe's success
and cancel links) at the live server.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CardTransaction, MembershipCard, Payment, StripeEvent
from app.services import cards
from app.services.cards import add_months
from app.services.dues import tiers
from tests.browser.support import fits, menu, phone_page, sign_in
from tests.conftest import PASSWORD
from tests.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, running, sign

pytestmark = pytest.mark.browser

EMAIL = "ada.banda@example.org"


@pytest.fixture()
def standin(live_server, app, monkeypatch):
    """The Stripe stand-in, with the live server's Stripe settings and public URL pointed at it and itself."""
    with running() as stripe:
        for name, value in (("STRIPE_SECRET_KEY", SECRET_KEY), ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
                            ("STRIPE_API_BASE", stripe.base_url), ("PUBLIC_URL", live_server)):
            monkeypatch.setitem(app.config, name, value)
        yield stripe


def _member_with_login(tree, make_member, make_user, staff_admin, *, card_months_ago: int | None):
    """Ada (W1) with a portal login, the Annual tier, and (optionally) a 12-month card issued that long ago."""
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", email=EMAIL)
    make_user(EMAIL, "member", member=ada)
    card = None
    if card_months_ago is not None:
        card = cards.issue_card(None, ada, today=add_months(date.today(), -card_months_ago))
    tier = tiers.create_tier(staff_admin, {"name": "Annual", "price": "150", "currency": "ZMW",
                                           "duration_months": "12"})
    db.session.commit()
    return ada, card, tier


def _post_twice_at_once(url: str, payload: bytes) -> list[tuple[int, str]]:
    """The same signed delivery from two threads released together: (status, outcome) of each, sorted."""
    headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(payload, WEBHOOK_SECRET)}
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def post() -> None:
        request = urllib.request.Request(url, data=payload, method="POST", headers=headers)
        try:
            barrier.wait(timeout=10)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            answers.append((status, json.loads(body).get("outcome", body.decode())))
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    assert not errors, errors
    return sorted(answers)


def _pay_at_the_standin(phone, standin, live_server: str, tier_id: int, button_label: str) -> str:
    """Dues -> the tier's button -> the stand-in's checkout page -> Pay; back on the return page: the session id."""
    menu(phone, "nav-dues")
    assert fits(phone)
    button = phone.locator(f"#tiers li[data-tier-id='{tier_id}'] button[type=submit]")
    assert button.inner_text() == button_label
    refused: list[str] = []  # what the browser's Content-Security-Policy blocked, for the failure message
    phone.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        with phone.expect_navigation():
            button.click()
    except PlaywrightError as exc:
        phone.wait_for_timeout(300)  # the console's report of a blocked request may come after the abort
        raise AssertionError(f"the button did not lead to the checkout page: {refused or exc}") from exc
    assert phone.url.startswith(f"{standin.base_url}/pay/cs_"), phone.url
    session_id = urlsplit(phone.url).path.split("/")[2]
    assert "150.00 ZMW" in phone.locator("h1").inner_text()
    with phone.expect_navigation(url=f"{live_server}/dues/done?*"):
        phone.click("button:has-text('Pay')")
    assert parse_qs(urlsplit(phone.url).query) == {"session_id": [session_id]}
    return session_id


def _check_what_the_member_sees(phone, payment: Payment, valid_until: date) -> None:
    """The card page's valid-until, one completed payment with its receipt number, the receipt as a PDF."""
    menu(phone, "nav-card")
    assert phone.locator("#card-expiry").inner_text() == valid_until.strftime("%d %b %Y")
    menu(phone, "nav-dues")
    rows = phone.locator("#my-payments li[data-payment-id]")
    assert rows.count() == 1
    row = rows.first
    assert row.get_attribute("data-status") == "completed"
    assert f"receipt {payment.receipt_number}" in row.inner_text()
    assert f"valid until {valid_until:%d %b %Y}" in row.inner_text()
    assert fits(phone)
    with phone.expect_download() as download:
        row.locator("a:has-text('Receipt (PDF)')").click()
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def _committed(session_id: str) -> Payment:
    db.session.rollback()  # a fresh transaction: what the server committed
    return db.session.scalar(select(Payment).where(Payment.stripe_session_id == session_id))


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_member_pays_online_then_the_webhook_comes_twice_at_once_and_renews_once(
        live_server, standin, browser, tree, make_member, make_user):
    admin = make_user("admin@test.org", "admin")
    ada, card, tier = _member_with_login(tree, make_member, make_user, admin, card_months_ago=11)
    expiry = card.expires_on  # a month from now: inside the renewal window
    renewed_until = add_months(max(date.today(), expiry), 12)
    card_id = card.id

    phone = phone_page(browser)
    try:
        sign_in(phone, live_server, EMAIL, PASSWORD)
        assert phone.url == f"{live_server}/"
        session_id = _pay_at_the_standin(phone, standin, live_server, tier.id, "Renew online")

        # The return page re-read the session (the redirect proves nothing): paid, so completed.
        done = phone.locator("#dues-done")
        assert done.get_attribute("data-status") == "completed"
        assert standin.requests_to("GET", f"/v1/checkout/sessions/{session_id}")
        payment = _committed(session_id)
        assert payment.receipt_number and payment.receipt_number.startswith("R-")
        assert phone.locator("#receipt-number").inner_text() == payment.receipt_number
        assert phone.locator("#valid-until").inner_text() == \
            f"Your membership is valid until {renewed_until:%d %B %Y}."
        assert fits(phone)
        assert _count(StripeEvent) == 0  # no webhook yet: the stand-in was given no webhook URL

        # Stripe's event now arrives twice at once, signed: both 200, one of them a duplicate.
        payload = standin.last_event("checkout.session.completed")
        assert json.loads(payload)["data"]["object"]["id"] == session_id
        answers = _post_twice_at_once(f"{live_server}/webhooks/stripe", payload)
        assert answers == [(200, "done"), (200, "duplicate")]

        payment = _committed(session_id)
        assert db.session.get(MembershipCard, card_id).expires_on == renewed_until
        _check_what_the_member_sees(phone, payment, renewed_until)
    finally:
        phone.context.close()

    payment = _committed(session_id)
    assert (payment.status, payment.extended_from, payment.extended_to) == ("completed", expiry, renewed_until)
    assert _count(CardTransaction, CardTransaction.card_id == card_id, CardTransaction.type == "renewed") == 1
    assert _count(AuditEntry, AuditEntry.action == "payment.fulfilled") == 1
    assert _count(StripeEvent) == 1 and _count(Payment, Payment.receipt_number.is_not(None)) == 1


def test_when_the_webhook_comes_before_the_member_is_back_the_return_page_shows_it_done(
        live_server, standin, browser, tree, make_member, make_user, app):
    admin = make_user("admin@test.org", "admin")
    ada, _card, tier = _member_with_login(tree, make_member, make_user, admin, card_months_ago=None)
    standin.webhook_url = f"{live_server}/webhooks/stripe"  # the stand-in delivers, signed, before it redirects
    seen_before_return: dict = {}

    def at_pay(route) -> None:
        """The Pay button's POST, sent on to the stand-in; before its redirect reaches the browser: what was done?"""
        if route.request.method != "POST":
            return route.continue_()
        answer = route.fetch(max_redirects=0)  # the stand-in pays and delivers the webhook, then answers 303
        session_id = parse_qs(urlsplit(answer.headers["location"]).query)["session_id"][0]
        with app.app_context():  # Playwright runs handlers in a greenlet of its own: a context of their own
            payment = db.session.scalar(select(Payment).where(Payment.stripe_session_id == session_id))
            seen_before_return.update(fulfilled=payment.fulfilled_at is not None, events=[
                tuple(row) for row in db.session.execute(select(StripeEvent.type, StripeEvent.payment_id))])
            db.session.remove()
        route.fulfill(response=answer)

    phone = phone_page(browser)
    try:
        sign_in(phone, live_server, EMAIL, PASSWORD)
        phone.route(f"{standin.base_url}/pay/*", at_pay)
        session_id = _pay_at_the_standin(phone, standin, live_server, tier.id, "Pay online")  # no card yet
        payment = _committed(session_id)
        assert seen_before_return == {"fulfilled": True, "events": [("checkout.session.completed", payment.id)]}

        done = phone.locator("#dues-done")
        assert done.get_attribute("data-status") == "completed"
        valid_until = add_months(date.today(), 12)  # the card the payment issued
        assert phone.locator("#receipt-number").inner_text() == payment.receipt_number
        assert phone.locator("#valid-until").inner_text() == f"Your membership is valid until {valid_until:%d %B %Y}."

        # A late redelivery, twice at once: seen already, nothing moves.
        answers = _post_twice_at_once(f"{live_server}/webhooks/stripe", standin.last_event())
        assert answers == [(200, "duplicate"), (200, "duplicate")]
        _check_what_the_member_sees(phone, _committed(session_id), valid_until)
    finally:
        phone.context.close()

    payment = _committed(session_id)
    [card] = db.session.scalars(select(MembershipCard).where(MembershipCard.member_id == ada.id)).all()
    assert (payment.status, payment.card_id, card.expires_on) == ("completed", card.id, valid_until)
    assert _count(CardTransaction, CardTransaction.card_id == card.id) == 1  # issued, once
    assert _count(AuditEntry, AuditEntry.action == "payment.fulfilled") == 1
    assert _count(StripeEvent) == 1 and _count(Payment, Payment.receipt_number.is_not(None)) == 1
