""""Download my data": one JSON attachment with everything kept about the member, and nothing about anyone else.

Also the IDOR rule for the profile's routes: none carries a member id, so
no id can be changed to reach another member; ids smuggled in as query or
form arguments are ignored.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

from PIL import Image

from app.extensions import db
from app.models import EventCheckin
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import change_requests, member_photos
from app.services import events as event_service
from tests.conftest import login
from tests.portal.conftest import OTHER_EMAIL, post, text


def _download(client, **args):
    response = client.get("/profile/data", query_string=args)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="my-data-')
    assert response.headers["Cache-Control"] == "private, no-store"
    return json.loads(response.data)


def test_the_export_holds_profile_cards_registrations_attendance_consents_and_requests(
        portal, member, member_user, other, make_event, make_card, tree):
    member.national_id = "123456/10/1"
    member.consent_at = utcnow() - timedelta(days=30)
    member.consent_version = "2026-01"
    png = io.BytesIO()
    Image.new("RGB", (30, 30), "green").save(png, "PNG")
    member_photos.set_photo(None, member, png.getvalue())
    card = make_card(member)
    card_service.suspend_card(None, card, "Lost wallet")
    past = make_event(title="Past rally", days=-0.01, hours=3)  # registered while it ran
    coming = make_event(title="Coming meeting", days=4)
    event_service.register(None, past, member)
    event_service.register(None, coming, member)
    other_event = make_event(title="Bwalya only", days=5)
    event_service.register(None, other_event, other)
    change_requests.request_change(member_user, {"last_name": "Mwansa-Banda"}, "married")
    change_requests.request_erasure(member_user, "moving")
    db.session.commit()

    data = _download(portal)
    profile = data["profile"]
    assert (profile["first_name"], profile["last_name"], profile["membership_number"]) == \
        ("Chanda", "Mwansa", member.membership_number)
    assert profile["national_id"] == "123456/10/1" and profile["phone"] == "+260977123456"
    assert profile["unit"] == {"name": "Lukashya Ward 1", "code": "W1", "level": "ward"}
    assert data["consents"]["consent_version"] == "2026-01" and data["consents"]["consent_at"].startswith("20")
    assert data["photo"]["content_type"] == "image/jpeg" and len(data["photo"]["base64"]) > 100
    [exported_card] = data["cards"]
    assert exported_card["card_number"] == card.card_number
    assert [(t["type"], t["reason"]) for t in exported_card["transactions"]] == [("issued", ""),
                                                                                ("suspended", "Lost wallet")]
    titles = [r["event"]["title"] for r in data["event_registrations"]]
    assert titles == ["Past rally", "Coming meeting"] and "Bwalya only" not in json.dumps(data)
    assert data["status_history"][0]["to_status"] == "active"
    [req] = data["change_requests"]
    assert (req["status"], req["fields"], req["old_values"], req["note"]) == \
        ("pending", {"last_name": "Mwansa-Banda"}, {"last_name": "Mwansa"}, "married")
    assert data["erasure_requests"][0]["status"] == "pending"
    assert "notes" not in profile  # staff notes are internal
    assert "Bwalya" not in json.dumps(data) and other.membership_number not in json.dumps(data)


def test_attendance_lists_the_check_ins(portal, member, make_event, make_card):
    make_card(member)
    event = make_event(title="Door test", days=-0.01, hours=3)
    event_service.register(None, event, member)
    db.session.add(EventCheckin(event_id=event.id, member_id=member.id, slot="once", gate="North", method="card"))
    db.session.commit()
    [row] = _download(portal)["attendance"]
    assert row["event"]["title"] == "Door test" and (row["gate"], row["method"]) == ("North", "card")


def test_an_id_in_the_query_or_form_never_reaches_another_member(client, member, other):
    """Every profile route acts on the signed-in member only; ids sent along are ignored."""
    login(client, OTHER_EMAIL)  # Bwalya
    data = _download(client, member_id=member.id, id=member.id)
    assert data["profile"]["first_name"] == "Bwalya"
    page = text(client.get("/profile", query_string={"member_id": member.id, "id": member.id}))
    assert "Bwalya" in page and "Chanda" not in page
    post(client, "/profile/contact", {"phone": "0966555444", "email": "bwalya.p@example.org",
                                      "address": "Hijacked", "member_id": str(member.id), "id": str(member.id)})
    post(client, "/profile/delete", {"confirm": "y", "member_id": str(member.id)})
    db.session.expire_all()
    assert member.address is None and other.address == "Hijacked"
    assert change_requests.pending_erasure(member) is None and change_requests.pending_erasure(other) is not None
    # No route of the profile takes an id in its path.
    rules = [r for r in client.application.url_map.iter_rules() if r.endpoint.startswith("portal.profile")
             or r.endpoint == "portal.confirm_email"]
    assert rules and all(not (set(r.arguments) - {"token"}) for r in rules)
