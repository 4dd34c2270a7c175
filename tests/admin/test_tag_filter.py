"""The member list's Tag filter offers only tags the user could find members with (issue 8).

A ward coordinator must not learn tag names used only in other wards, or only
by deleted members, from the filter's drop-down.
"""

from __future__ import annotations

from app.extensions import db
from app.services import members as member_service
from tests.conftest import login


def _options_page(client, email: str) -> str:
    login(client, email)
    response = client.get("/admin/member/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_tag_options_are_scoped(client, tree, staff, make_member):
    make_member(tree["w1"], tags=["choir-w1"])
    make_member(tree["w4"], tags=["land-dispute-w4"])
    gone = make_member(tree["w1"], tags=["gone-w1"])
    member_service.delete_member(None, gone)
    db.session.commit()

    coordinator = _options_page(client, "coord@test.org")
    assert "choir-w1" in coordinator
    assert "land-dispute-w4" not in coordinator
    assert "gone-w1" not in coordinator

    everyone = _options_page(client, "super@test.org")
    assert "choir-w1" in everyone and "land-dispute-w4" in everyone
