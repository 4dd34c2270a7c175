"""``POST /api/v1/events/{id}/register`` for oneself sends the same confirmation as the portal (real SMTP)."""

from __future__ import annotations

from datetime import timedelta

from app.models.base import utcnow
from app.services import events as event_service


def test_registering_through_the_api_sends_the_confirmation_once(app, api, tree, make_member, make_user,
                                                                 smtp_mail):
    chanda = make_member(tree["w1"], first_name="Chanda", email="chanda.m@example.org")
    make_user("chanda@test.org", "member", member=chanda)
    start = utcnow() + timedelta(days=3)
    event = event_service.create_event(None, {"title": "Ward meeting", "start_at": start, "venue": "Hall",
                                              "end_at": start + timedelta(hours=2), "unit_id": tree["w1"].id,
                                              "status": "upcoming"})
    me = api.login("chanda@test.org")
    assert me.post(f"/events/{event.id}/register").status_code == 201
    assert me.post(f"/events/{event.id}/register").status_code == 200  # unchanged: no second mail
    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "chanda.m@example.org" and received["Subject"] == "You are registered: Ward meeting"
    assert f"{app.config['PUBLIC_URL']}/events/{event.id}" in received.get_body(("plain",)).get_content()
    assert len(smtp_mail.messages) == 1
