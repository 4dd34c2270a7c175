"""The card endpoints: issue, list, read, status changes, revoke, reissue, renew, QR, PDF and public verify."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from PIL import Image

from app.extensions import db, limiter
from app.services import cards
from tests.api.conftest import assert_error


@pytest.fixture()
def people(tree, make_member):
    return {
        "w1": make_member(tree["w1"], first_name="Chanda", last_name="Mwansa"),
        "w1b": make_member(tree["w1"]),
        "w4": make_member(tree["w4"]),
        "pending": make_member(tree["w1"], status="pending"),
    }


def test_issue_returns_the_card(as_admin, people):
    response = as_admin.post("/cards", json={"member_id": people["w1"].id, "card_type": "premium"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {"id", "card_number", "member_id", "status", "card_type", "issued_on", "expires_on"} <= set(body)
    assert body["member_id"] == people["w1"].id and body["status"] == "active" and body["card_type"] == "premium"
    assert body["issued_on"] == date.today().isoformat()
    assert response.headers["Location"].endswith(f"/api/v1/cards/{body['id']}")
    cards.parse_card_number(body["card_number"])
    again = as_admin.post("/cards", json={"member_id": people["w1"].id})
    assert "already has an active card" in assert_error(again, 409, "member_id")["error"]


def test_issue_to_pending_member_is_refused_with_the_reason(as_admin, people):
    body = assert_error(as_admin.post("/cards", json={"member_id": people["pending"].id}), 409, "member_id")
    assert "is pending" in body["error"]


@pytest.mark.parametrize("payload,status,field", [
    ({}, 422, "member_id"),
    ({"member_id": "7"}, 400, "member_id"),
    ({"member_id": 1, "card_type": 3}, 400, "card_type"),
    ({"member_id": 1, "colour": "red"}, 422, "colour"),
])
def test_issue_input_errors(as_admin, people, payload, status, field):
    assert_error(as_admin.post("/cards", json=payload), status, field)


def test_issue_unknown_type(as_admin, people):
    assert_error(as_admin.post("/cards", json={"member_id": people["w1"].id, "card_type": "gold"}), 422, "card_type")


def test_issue_scope(as_coord, as_member, as_admin, people, staff, tree, make_user):
    # The coordinator reads cards but may issue them nowhere: 403 whoever the member is.
    assert_error(as_coord.post("/cards", json={"member_id": people["w1"].id}), 403)
    assert_error(as_coord.post("/cards", json={"member_id": people["w4"].id}), 403)
    assert_error(as_member.post("/cards", json={"member_id": people["w1"].id}), 403)
    from app.services import rbac

    p1_admin = make_user("p1admin@test.org")
    rbac.assign_role(None, p1_admin, rbac.role_by_name("admin"), tree["p1"])
    api = as_admin.login("p1admin@test.org")
    assert api.post("/cards", json={"member_id": people["w1"].id}).status_code == 201
    assert_error(api.post("/cards", json={"member_id": people["w4"].id}), 422, "member_id")


def test_list_filters_and_scope(as_admin, as_coord, people):
    c1 = cards.issue_card(None, people["w1"])
    c2 = cards.issue_card(None, people["w1b"], "lifetime")
    c4 = cards.issue_card(None, people["w4"])
    c2.expires_on = None
    c1.expires_on = date.today() - timedelta(days=2)
    db.session.flush()
    everything = as_admin.get("/cards").get_json()
    assert everything["total"] == 3 and [c["id"] for c in everything["items"]] == [c4.id, c2.id, c1.id]
    mine = as_coord.get("/cards").get_json()
    assert {c["id"] for c in mine["items"]} == {c1.id, c2.id} and mine["total"] == 2
    assert [c["id"] for c in as_admin.get("/cards?status=expired").get_json()["items"]] == [c1.id]
    assert {c["id"] for c in as_admin.get("/cards?status=active").get_json()["items"]} == {c2.id, c4.id}
    assert [c["id"] for c in as_admin.get("/cards?card_type=lifetime").get_json()["items"]] == [c2.id]
    assert [c["id"] for c in as_admin.get(f"/cards?card_number={c4.card_number.lower()}").get_json()["items"]] == [c4.id]
    assert [c["id"] for c in as_admin.get(f"/cards?member_id={people['w1'].id}").get_json()["items"]] == [c1.id]
    unit = people["w4"].unit_id
    assert [c["id"] for c in as_admin.get(f"/cards?unit_id={unit}").get_json()["items"]] == [c4.id]
    to = (date.today() + timedelta(days=5)).isoformat()
    assert [c["id"] for c in as_admin.get(f"/cards?expires_to={to}").get_json()["items"]] == [c1.id]
    page = as_admin.get("/cards?per_page=2").get_json()
    assert page["links"]["next"] and len(page["items"]) == 2
    assert_error(as_admin.get("/cards?status=lost"), 422, "status")
    assert_error(as_admin.get("/cards?expires_from=tomorrow"), 422, "expires_from")


def test_wrong_check_digit_is_reported(as_admin, people):
    card = cards.issue_card(None, people["w1"])
    wrong = card.card_number[:-1] + str((int(card.card_number[-1]) + 1) % 10)
    body = assert_error(as_admin.get(f"/cards?card_number={wrong}"), 422, "card_number")
    assert "wrong check digit" in body["error"]


def test_get_card_and_scope(as_admin, as_coord, as_member, people):
    inside = cards.issue_card(None, people["w1"])
    outside = cards.issue_card(None, people["w4"])
    body = as_coord.get(f"/cards/{inside.id}").get_json()
    assert body["card_number"] == inside.card_number and body["transactions"][0]["type"] == "issued"
    assert_error(as_coord.get(f"/cards/{outside.id}"), 404)
    assert_error(as_member.get(f"/cards/{inside.id}"), 403)
    assert_error(as_admin.get("/cards/999999"), 404)


def test_status_changes_through_put(as_admin, as_coord, people):
    card = cards.issue_card(None, people["w1"])
    assert_error(as_admin.put(f"/cards/{card.id}", json={"status": "suspended"}), 422, "reason")
    body = as_admin.put(f"/cards/{card.id}", json={"status": "suspended", "reason": "dues"}).get_json()
    assert body["status"] == "suspended" and body["transactions"][0]["reason"] == "dues"
    assert_error(as_admin.put(f"/cards/{card.id}", json={"status": "expired", "reason": "x"}), 409, "status")
    assert as_admin.put(f"/cards/{card.id}", json={"status": "active", "reason": "paid"}).get_json()["status"] == "active"
    assert_error(as_coord.put(f"/cards/{card.id}", json={"status": "suspended", "reason": "x"}), 403)
    assert_error(as_admin.put(f"/cards/{card.id}", json={"status": "suspended", "reason": "x", "x": 1}), 422, "x")


def test_delete_revokes(as_admin, people):
    card = cards.issue_card(None, people["w1"])
    token = cards.card_token(card)
    body = as_admin.delete(f"/cards/{card.id}", json={"reason": "stolen"}).get_json()
    assert body["status"] == "revoked" and body["transactions"][0]["reason"] == "stolen"
    assert cards.verify_token(token).status == "revoked"
    assert_error(as_admin.delete(f"/cards/{card.id}"), 409, "status")
    other = cards.issue_card(None, people["w1b"])
    body = as_admin.delete(f"/cards/{other.id}").get_json()
    assert body["transactions"][0]["reason"] == "Revoked through the API"


def test_reissue(as_admin, people):
    card = cards.issue_card(None, people["w1"])
    assert_error(as_admin.post(f"/cards/{card.id}/reissue", json={}), 422, "reason")
    response = as_admin.post(f"/cards/{card.id}/reissue", json={"reason": "lost"})
    assert response.status_code == 201
    new = response.get_json()
    assert new["replaces_id"] == card.id and new["card_number"] != card.card_number
    assert as_admin.get(f"/cards/{card.id}").get_json()["status"] == "revoked"


def test_member_card_and_renew(as_admin, as_coord, people):
    assert_error(as_admin.get(f"/members/{people['w1'].id}/card"), 404)
    assert_error(as_admin.post(f"/members/{people['w1'].id}/card/renew"), 409, "member_id")
    card = cards.issue_card(None, people["w1"])
    assert as_coord.get(f"/members/{people['w1'].id}/card").get_json()["id"] == card.id
    assert_error(as_coord.get(f"/members/{people['w4'].id}/card"), 404)
    before = card.expires_on
    body = as_admin.post(f"/members/{people['w1'].id}/card/renew", json={"reason": "paid"}).get_json()
    assert body["expires_on"] == cards.add_months(before, 12).isoformat()
    assert body["renewed_at"] and body["transactions"][0]["type"] == "renewed"
    assert_error(as_coord.post(f"/members/{people['w1'].id}/card/renew"), 403)
    assert_error(as_admin.post(f"/members/{people['w1'].id}/card/renew", data="nope"), 400)


def test_qr_png_and_svg(as_admin, people, app):
    card = cards.issue_card(None, people["w1"])
    png = as_admin.get(f"/cards/{card.id}/qr")
    assert png.status_code == 200 and png.mimetype == "image/png"
    image = Image.open(io.BytesIO(png.data))
    import zxingcpp

    decoded = zxingcpp.read_barcodes(image)
    assert len(decoded) == 1
    url = decoded[0].text
    assert "/verify/" in url and cards.verify_token(url.rsplit("/", 1)[1]).status == "valid"
    svg = as_admin.get(f"/cards/{card.id}/qr?format=svg")
    assert svg.mimetype == "image/svg+xml" and svg.data.lstrip().startswith((b"<?xml", b"<svg"))
    assert_error(as_admin.get(f"/cards/{card.id}/qr?format=gif"), 422, "format")


def test_qr_uses_the_public_url(as_admin, people, app, monkeypatch):
    card = cards.issue_card(None, people["w1"])
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://cards.example.org")
    image = Image.open(io.BytesIO(as_admin.get(f"/cards/{card.id}/qr").data))
    import zxingcpp

    assert zxingcpp.read_barcodes(image)[0].text.startswith("https://cards.example.org/verify/")


def test_pdf(as_admin, as_coord, people):
    card = cards.issue_card(None, people["w1"])
    response = as_coord.get(f"/cards/{card.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(response.data)
    try:
        assert len(doc) == 2
        assert "Chanda Mwansa" in doc[0].get_textpage().get_text_range()
    finally:
        doc.close()


# --- public verification ---------------------------------------------------------------------


def test_verify_is_public_and_minimal(api, people):
    card = cards.issue_card(None, people["w1"])
    response = api.post("/cards/verify", json={"token": cards.card_token(card)})
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "valid", "card_number": card.card_number, "expires_on": card.expires_on.isoformat(),
        "message": f"Card {card.card_number} is valid until {card.expires_on.isoformat()}.",
    }
    cards.revoke_card(None, card, "x")
    assert api.post("/cards/verify", json={"token": cards.card_token(card)}).get_json()["status"] == "revoked"


@pytest.mark.parametrize("token", ["", "x", "A" * 199, "A" * 5000, "%00", "é" * 50])
def test_verify_bad_tokens_are_invalid_not_errors(api, token):
    if token == "":
        assert_error(api.post("/cards/verify", json={"token": token}), 422, "token")
        return
    body = api.post("/cards/verify", json={"token": token}).get_json()
    assert body["status"] == "invalid" and body["card_number"] is None and body["expires_on"] is None


def test_verify_input_errors(api):
    assert_error(api.post("/cards/verify", json={"token": 5}), 400, "token")
    assert_error(api.post("/cards/verify", json={"token": "abc", "more": 1}), 422, "more")
    assert_error(api.post("/cards/verify", data="[]"), 400)


def test_verify_is_rate_limited(api, app):
    app.config["CARD_VERIFY_RATE_LIMIT"] = "3 per minute"
    limiter.reset()
    try:
        codes = [api.post("/cards/verify", json={"token": "abc"}).status_code for _ in range(5)]
    finally:
        app.config["CARD_VERIFY_RATE_LIMIT"] = "60 per minute"
        limiter.reset()
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
