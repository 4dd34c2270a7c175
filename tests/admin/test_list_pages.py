"""A console list opened past its last page says so and links to the last page.

Before, page 999 of the member list showed "2,003 members" above "No members
yet"; the other lists showed their empty message under their figures too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.services import cards
from app.services import events as ev
from app.services import members as member_service
from tests.conftest import login


def text(response) -> str:
    return response.get_data(as_text=True)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return text(response)


def last_page_link(html: str) -> str:
    match = re.search(r'id="last-page-link" href="([^"]+)"', html)
    assert match, "no link to the last page"
    return unescape(match.group(1))


@pytest.fixture()
def as_super(client, staff):
    login(client, "super@test.org")
    return client


@pytest.fixture()
def registry(tree, make_member):
    """45 members in W1 (three pages of 20) and two soft-deleted ones."""
    people = [make_member(tree["w1"], first_name=f"Person{i}", last_name="Banda") for i in range(45)]
    for member in people[:2]:
        member_service.delete_member(None, member)
    db.session.commit()
    return people


def test_member_list_past_its_end_says_so_and_links_to_the_last_page(as_super, registry, tree):
    html = page(as_super, f"/admin/member/?unit={tree['w1'].id}&search=banda&page=998")
    assert "43 members" in html
    assert "Page 999 is past the end of this list, which has 3 pages (43 in all)." in html
    assert "No members yet" not in html and "No members match" not in html
    link = last_page_link(html)
    args = parse_qs(urlsplit(link).query)
    assert args["page"] == ["2"] and args["search"] == ["banda"] and args["unit"] == [str(tree["w1"].id)]
    last = page(as_super, link)
    assert "past the end" not in last and last.count("Person") >= 3  # the last page's rows


def test_member_list_last_page_and_empty_list_are_unchanged(as_super, registry, tree):
    assert "past the end" not in page(as_super, "/admin/member/?page=2")
    html = page(as_super, "/admin/member/?search=nobody-is-called-this&page=5")
    assert "No members match" in html and "past the end" not in html


def test_deleted_members_past_the_end(as_super, registry):
    html = page(as_super, "/admin/member/deleted/?page=3")
    assert "Page 4 is past the end of this list, which has 1 page (2 in all)." in html
    assert "No deleted members" not in html
    assert parse_qs(urlsplit(last_page_link(html)).query)["page"] == ["0"]


def test_card_and_audit_lists_past_the_end(as_super, staff, registry):
    cards.issue_card(staff["super_admin"], registry[5])
    db.session.commit()
    html = page(as_super, "/admin/cards/?page=7")
    assert "Page 8 is past the end of this list, which has 1 page (1 in all)." in html and "No cards yet" not in html
    html = page(as_super, "/admin/audit/?page=100000")
    assert "Page 100,001 is past the end of this list" in html
    assert "past the end" not in page(as_super, last_page_link(html))


def test_event_list_and_registrations_past_the_end(as_super, staff, registry, tree):
    now = utcnow()
    event = ev.create_event(staff["super_admin"], {"title": "Rally", "unit_id": tree["w1"].id, "status": "upcoming",
                                                   "start_at": now + timedelta(days=1),
                                                   "end_at": now + timedelta(days=1, hours=2)})
    ev.register(staff["super_admin"], event, registry[10])
    db.session.commit()
    html = page(as_super, "/admin/events/?when=upcoming&page=4")
    assert "Page 5 is past the end of this list, which has 1 page (1 in all)." in html
    assert 'id="no-events"' not in html
    assert parse_qs(urlsplit(last_page_link(html)).query) == {"when": ["upcoming"], "page": ["0"]}
    html = page(as_super, f"/admin/events/{event.id}/?page=9")
    assert "Page 10 is past the end of this list" in html and "No registrations" not in html
    assert urlsplit(last_page_link(html)).path == f"/admin/events/{event.id}/"


def test_job_list_past_the_end(as_super, staff):
    db.session.add(Job(kind="import", title="Import members.csv", params={}, state="succeeded",
                       created_by_id=staff["super_admin"].id))
    db.session.commit()
    html = page(as_super, "/admin/jobs/?page=2")
    assert "Page 3 is past the end of this list, which has 1 page (1 in all)." in html
    assert "No background jobs yet" not in html
