"""The console dashboard: figures within the user's scope, charts without a CDN."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from app.extensions import db
from app.services import members as member_service
from tests.conftest import csrf_token_from, login


@pytest.fixture()
def registry(tree, make_member):
    """W1: two active, one pending; W2: one lapsed-to-be; W3: one active; W4: one suspended; one deleted in W1."""
    today = date.today()
    made = {
        "a": make_member(tree["w1"], joined_on=today),
        "b": make_member(tree["w1"], joined_on=today - timedelta(days=70)),
        "c": make_member(tree["w1"], status="pending", joined_on=today - timedelta(days=500)),
        "d": make_member(tree["w2"]),
        "e": make_member(tree["w3"]),
        "f": make_member(tree["w4"]),
        "gone": make_member(tree["w1"]),
    }
    member_service.change_status(None, made["d"], "lapsed", "Did not renew")
    member_service.change_status(None, made["f"], "suspended", "Conduct")
    member_service.delete_member(None, made["gone"])
    db.session.flush()
    return made


def text(response) -> str:
    return response.get_data(as_text=True)


def figure(html: str, status: str) -> int:
    match = re.search(rf'data-status="{status}">([\d,]+)<', html)
    assert match, status
    return int(match.group(1).replace(",", ""))


def total(html: str) -> int:
    return int(re.search(r'id="dash-total">([\d,]+)<', html).group(1).replace(",", ""))


def unit_count(html: str, unit) -> int:
    return int(re.search(rf'data-unit="{unit.id}">([\d,]+)<', html).group(1).replace(",", ""))


def chart_data(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="dash-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw)


def test_anonymous_redirects_to_login_and_members_get_403(client, staff):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    login(client, "member@test.org")
    assert client.get("/admin/").status_code == 403


def test_admin_sees_the_whole_registry(client, staff, tree, registry):
    login(client, "admin@test.org")
    html = text(client.get("/admin/"))
    assert total(html) == 6  # the deleted member is not counted
    assert figure(html, "active") == 3 and figure(html, "pending") == 1
    assert figure(html, "lapsed") == 1 and figure(html, "suspended") == 1 and figure(html, "expelled") == 0
    # Provinces for a global user, each linking to the filtered member list.
    assert unit_count(html, tree["p1"]) == 5 and unit_count(html, tree["p2"]) == 1
    assert f'href="/admin/member/?unit={tree["p1"].id}"' in html
    data = chart_data(html)
    assert data["status"]["values"] == [1, 3, 1, 1, 0, 0, 0]  # pending, active, suspended, lapsed, ...
    assert len(data["months"]["values"]) == 12
    assert data["months"]["values"][-1] >= 4  # a, d, e, f joined today
    assert sum(data["months"]["values"]) == 5  # c joined 500 days ago: outside the window


def test_coordinator_figures_count_only_their_ward(client, staff, tree, registry):
    login(client, "coord@test.org")
    html = text(client.get("/admin/"))
    assert total(html) == 3
    assert figure(html, "active") == 2 and figure(html, "pending") == 1 and figure(html, "suspended") == 0
    # A ward has no children: the ward itself is listed.
    assert unit_count(html, tree["w1"]) == 3
    assert f'data-unit="{tree["p1"].id}"' not in html and f'data-unit="{tree["w3"].id}"' not in html
    assert f'href="/admin/member/?unit={tree["w1"].id}"' in html
    assert chart_data(html)["status"]["values"] == [1, 2, 0, 0, 0, 0, 0]
    # No staff login list for coordinators (they do not manage users).
    assert "Recent logins" not in html


def test_district_admin_sees_children_of_their_unit(client, make_user, tree, registry):
    make_user("district@test.org", "admin", tree["p1"])
    login(client, "district@test.org")
    html = text(client.get("/admin/"))
    assert total(html) == 5
    assert unit_count(html, tree["d1"]) == 4 and unit_count(html, tree["d2"]) == 1
    assert f'data-unit="{tree["p2"].id}"' not in html


def test_unit_links_lead_to_the_same_numbers(client, staff, tree, registry):
    login(client, "admin@test.org")
    listing = text(client.get(f"/admin/member/?unit={tree['p1'].id}"))
    assert re.search(r'id="member-count">\s*5 members', listing)


def test_recent_logins_for_global_admins(client, staff, registry):
    login(client, "coord@test.org")
    page = text(client.get("/admin/"))
    assert client.post("/logout", data={"csrf_token": csrf_token_from(page)}).status_code == 302
    login(client, "admin@test.org")
    html = text(client.get("/admin/"))
    logins = html[html.index('id="dash-logins"'):]
    assert "admin@test.org" in logins and "coord@test.org" in logins


def test_empty_state(client, staff):
    login(client, "admin@test.org")
    html = text(client.get("/admin/"))
    assert "No members in your area yet." in html
    assert "No one joined in the last 12 months." in html
    assert 'id="dash-data"' not in html  # no charts without data


def test_charts_use_the_vendored_chartjs(client, staff, registry):
    login(client, "admin@test.org")
    html = text(client.get("/admin/"))
    assert '/static/vendor/chartjs/chart.umd.min.js' in html
    assert not re.search(r'<script[^>]+src="(https?:)?//', html)  # no CDN
    assert client.get("/static/vendor/chartjs/chart.umd.min.js").status_code == 200


def test_joins_by_month_counts_calendar_months(app, tree, make_member, staff):
    today = date(2025, 3, 15)
    make_member(tree["w1"], joined_on=date(2025, 3, 1))
    make_member(tree["w1"], joined_on=date(2025, 1, 31))
    make_member(tree["w3"], joined_on=date(2024, 4, 1))
    make_member(tree["w3"], joined_on=date(2024, 3, 31))  # 12 months back is April 2024
    months = member_service.joins_by_month(staff["admin"], 12, today=today)
    assert months[0] == (date(2024, 4, 1), 1) and months[-1] == (date(2025, 3, 1), 1)
    assert dict(months)[date(2025, 1, 1)] == 1 and sum(n for _m, n in months) == 3
    coordinator = member_service.joins_by_month(staff["coordinator"], 12, today=today)
    assert sum(n for _m, n in coordinator) == 2
