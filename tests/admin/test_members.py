"""The member registry in the staff console, through HTTP with CSRF on.

Each test logs in through the real form and checks what a person sees:
status codes, text in the page, and the database state behind it.
"""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Member, MemberPhoto, MemberStatusChange
from app.services import member_photos
from tests.conftest import csrf_token_from, login

LIST = "/admin/member/"


@pytest.fixture()
def people(tree, make_member):
    """Members across the tree: three in W1, one each in W2, W3 and W4."""
    return {
        "banda": make_member(tree["w1"], first_name="Mwila", last_name="Banda", phone="0977123456",
                             email="mwila@example.org", national_id="123456/10/1"),
        "phiri": make_member(tree["w1"], first_name="Grace", last_name="Phiri", status="pending"),
        "bandawe": make_member(tree["w1"], first_name="Joseph", last_name="Bandawe",
                               joined_on=date.today() - timedelta(days=400), tags="youth, volunteer"),
        "tembo": make_member(tree["w2"], first_name="Ruth", last_name="Tembo"),
        "zulu": make_member(tree["w3"], first_name="Peter", last_name="Zulu", phone="0966123456"),
        "mwale": make_member(tree["w4"], first_name="Esther", last_name="Mwale", status="pending"),
    }


def text(response) -> str:
    return response.get_data(as_text=True)


def get_ok(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return text(response)


def token(client, url: str = LIST) -> str:
    return csrf_token_from(get_ok(client, url))


def member_count_shown(html: str) -> int:
    match = re.search(r'id="member-count">\s*([\d,]+) member', html)
    assert match, "no member count on the page"
    return int(match.group(1).replace(",", ""))


def rows(html: str) -> str:
    """The list table only (flash messages may name members too)."""
    return html[html.index("model-list"):]


def form_data(unit, **overrides) -> dict:
    data = {
        "first_name": "Chileshe",
        "last_name": "Mulenga",
        "other_names": "",
        "gender": "female",
        "date_of_birth": "1990-04-25",
        "national_id": "",
        "phone": "0955123456",
        "email": "chileshe@example.org",
        "address": "Plot 12, Kasama",
        "unit": str(unit.id),
        "joined_on": date.today().isoformat(),
        "status": "active",
        "notes": "",
        "tags": "Youth, volunteer",
    }
    data.update(overrides)
    return data


def png_bytes(size=(800, 600)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


# --- access ---------------------------------------------------------------------------


def test_anonymous_goes_to_login_and_members_get_403(client, staff, people):
    response = client.get(LIST)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "/login" in client.get(f"/admin/member/photo/{people['banda'].id}").headers["Location"]
    login(client, "member@test.org")
    assert client.get(LIST).status_code == 403
    assert client.get(f"/admin/member/details/?id={people['banda'].id}").status_code == 403


def test_menu_and_buttons_follow_permissions(client, staff, people):
    login(client, "coord@test.org")
    html = get_ok(client, "/admin/")
    assert 'href="/admin/member/"' in html
    listing = get_ok(client, LIST)
    assert "/admin/member/new/" in listing
    assert "/admin/member/delete/" not in listing  # coordinators cannot delete
    assert "Deleted members" not in listing
    assert client.get("/admin/member/deleted/").status_code == 403


# --- list, count, search, filters -----------------------------------------------------


def test_coordinator_lists_and_counts_only_their_ward(client, staff, people):
    login(client, "coord@test.org")
    html = get_ok(client, LIST)
    for key in ("banda", "phiri", "bandawe"):
        assert people[key].membership_number in html
    for key in ("tembo", "zulu", "mwale"):
        assert people[key].membership_number not in html
    assert member_count_shown(html) == 3
    assert "Lukashya Ward 1" in html


def test_admin_sees_everyone_newest_first_and_deleted_are_hidden(client, staff, people):
    people["tembo"].deleted_at = people["tembo"].created_at
    db.session.flush()
    login(client, "admin@test.org")
    html = get_ok(client, LIST)
    assert member_count_shown(html) == 5
    assert people["tembo"].membership_number not in html
    positions = [html.index(people[k].membership_number) for k in ("mwale", "zulu", "banda")]
    assert positions == sorted(positions)  # id desc


def test_search_by_phone_surname_prefix_number_id_and_email(client, staff, people):
    login(client, "admin@test.org")
    banda = people["banda"].membership_number
    for query in ("0977 123 456", "+260977123456", "ban", "Banda", "mwila banda",
                  banda, banda.lower(), "123456/10/1", "MWILA@example.org"):
        html = get_ok(client, f"{LIST}?search={query}")
        assert banda in html, query
    surname_prefix = get_ok(client, f"{LIST}?search=band")
    assert member_count_shown(surname_prefix) == 2  # Banda and Bandawe
    assert people["phiri"].membership_number not in surname_prefix
    # A prefix search, not "contains": "anda" is inside Banda but starts nothing.
    assert "No members match" in get_ok(client, f"{LIST}?search=anda")


def test_search_stays_within_scope(client, staff, people):
    login(client, "coord@test.org")
    html = get_ok(client, f"{LIST}?search=0966123456")  # Zulu's phone, in W3
    assert people["zulu"].membership_number not in html
    assert "No members match" in html


def test_filter_by_unit_subtree_and_status(client, staff, tree, people):
    login(client, "admin@test.org")
    constituency = get_ok(client, f"{LIST}?flt0_unit_in={tree['c1'].id}")
    assert member_count_shown(constituency) == 4  # W1 (3) + W2 (1)
    assert people["zulu"].membership_number not in constituency

    shortcut = get_ok(client, f"{LIST}?unit={tree['p1'].id}")
    assert member_count_shown(shortcut) == 5
    assert people["mwale"].membership_number not in shortcut
    assert "Unit: Northern" in shortcut

    pending = get_ok(client, f"{LIST}?unit={tree['p1'].id}&flt0_status_equals=pending")
    assert member_count_shown(pending) == 1
    assert people["phiri"].membership_number in pending
    assert people["mwale"].membership_number not in pending

    everywhere_pending = get_ok(client, f"{LIST}?flt0_status_equals=pending")
    assert member_count_shown(everywhere_pending) == 2


def test_unit_filter_outside_scope_gives_empty_list(client, staff, tree, people):
    login(client, "coord@test.org")
    assert "No members match" in get_ok(client, f"{LIST}?unit={tree['w3'].id}")
    assert "No members match" in get_ok(client, f"{LIST}?flt0_unit_in={tree['w3'].id}")
    assert "No members match" in get_ok(client, f"{LIST}?unit=999999")
    # The unit filter offers only the coordinator's own units.
    html = get_ok(client, LIST)
    assert "Lukashya Ward 1" in html and "Lunte Ward 1" not in html


def test_filter_by_joined_date_and_tag(client, staff, people):
    login(client, "admin@test.org")
    cutoff = (date.today() - timedelta(days=30)).isoformat()
    old = get_ok(client, f"{LIST}?flt0_joined_on_before={cutoff}")
    assert member_count_shown(old) == 1 and people["bandawe"].membership_number in old
    recent = get_ok(client, f"{LIST}?flt0_joined_on_after={cutoff}")
    assert member_count_shown(recent) == 5
    start = (date.today() - timedelta(days=500)).isoformat()
    between = get_ok(client, f"{LIST}?flt0_joined_on_between={start}+to+{cutoff}")
    assert member_count_shown(between) == 1
    tagged = get_ok(client, f"{LIST}?flt0_tag_is=youth")
    assert member_count_shown(tagged) == 1 and people["bandawe"].membership_number in tagged


def test_sorting_by_name(client, staff, people):
    login(client, "admin@test.org")
    html = get_ok(client, f"{LIST}?sort=1")  # column 1 is Name (surname)
    order = [html.index(people[k].membership_number) for k in ("banda", "bandawe", "mwale", "phiri", "tembo", "zulu")]
    assert order == sorted(order)


# --- create and edit ------------------------------------------------------------------


def test_create_with_bad_phone_rerenders_with_message_and_typed_values(client, staff, tree):
    login(client, "coord@test.org")
    csrf = token(client, "/admin/member/new/")
    response = client.post("/admin/member/new/", data={**form_data(tree["w1"], phone="12345"), "csrf_token": csrf})
    assert response.status_code == 200
    html = text(response)
    assert "is not a valid phone number" in html
    assert 'value="Chileshe"' in html and 'value="Mulenga"' in html
    assert 'value="chileshe@example.org"' in html and "Plot 12, Kasama" in html
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_create_requires_names_with_messages_per_field(client, staff, tree):
    login(client, "coord@test.org")
    csrf = token(client, "/admin/member/new/")
    data = {**form_data(tree["w1"], first_name="", last_name=""), "csrf_token": csrf}
    html = text(client.post("/admin/member/new/", data=data))
    assert "First name is required." in html and "Last name is required." in html
    assert 'value="chileshe@example.org"' in html


def test_create_member_appears_in_list_and_audit_log(client, staff, tree):
    login(client, "coord@test.org")
    csrf = token(client, "/admin/member/new/")
    response = client.post("/admin/member/new/", data={**form_data(tree["w1"]), "csrf_token": csrf})
    assert response.status_code == 302
    member = db.session.scalar(select(Member).where(Member.last_name == "Mulenga"))
    assert member is not None and member.status == "active" and member.phone == "+260955123456"
    assert [t.name for t in member.tags] == ["volunteer", "youth"]
    assert response.headers["Location"].endswith(f"/admin/member/details/?id={member.id}")
    assert member.membership_number in get_ok(client, LIST)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.create"))
    assert entry is not None and entry.object_id == str(member.id) and entry.actor_id == staff["coordinator"].id
    details = get_ok(client, f"/admin/member/details/?id={member.id}")
    assert "member.create" in details and "Registered" in details


def test_post_without_csrf_token_is_refused(client, staff, tree, people):
    login(client, "admin@test.org")
    response = client.post("/admin/member/new/", data=form_data(tree["w1"]))
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.last_name == "Mulenga")) == 0
    response = client.post("/admin/member/delete/", data={"id": people["banda"].id, "url": LIST})
    assert response.status_code == 400
    assert people["banda"].deleted_at is None
    response = client.post(f"/admin/member/status/{people['banda'].id}", data={"status": "suspended", "reason": "x"})
    assert response.status_code == 400
    # With the token from the page, the same create works.
    csrf = token(client, "/admin/member/new/")
    assert client.post("/admin/member/new/", data={**form_data(tree["w1"]), "csrf_token": csrf}).status_code == 302


def test_duplicate_phone_is_refused_under_the_field(client, staff, tree, people):
    login(client, "coord@test.org")
    csrf = token(client, "/admin/member/new/")
    html = text(client.post("/admin/member/new/", data={**form_data(tree["w1"], phone="0977123456"), "csrf_token": csrf}))
    assert "A member with this phone number already exists: Mwila Banda" in html


def test_coordinator_cannot_create_outside_their_ward(client, staff, tree):
    login(client, "coord@test.org")
    page = get_ok(client, "/admin/member/new/")
    assert "Lukashya Ward 1" in page
    assert "Lunte Ward 1" not in page and f'value="{tree["w3"].id}"' not in page
    response = client.post("/admin/member/new/", data={**form_data(tree["w3"]), "csrf_token": csrf_token_from(page)})
    assert response.status_code == 200
    assert "That unit does not exist or is outside your area." in text(response)
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_coordinator_gets_404_for_members_of_other_wards(client, staff, people):
    zulu = people["zulu"]
    login(client, "coord@test.org")
    csrf = token(client)
    assert client.get(f"/admin/member/details/?id={zulu.id}").status_code == 404
    assert client.get(f"/admin/member/edit/?id={zulu.id}").status_code == 404
    assert client.get(f"/admin/member/photo/{zulu.id}").status_code == 404
    assert client.post("/admin/member/delete/", data={"id": zulu.id, "csrf_token": csrf}).status_code == 404
    assert client.post(f"/admin/member/status/{zulu.id}",
                       data={"status": "suspended", "reason": "x", "csrf_token": csrf}).status_code == 404
    response = client.post(f"/admin/member/edit/?id={zulu.id}", data={**form_data(zulu.unit), "csrf_token": csrf})
    assert response.status_code == 404
    assert zulu.first_name == "Peter" and zulu.deleted_at is None and zulu.status == "active"
    assert client.get("/admin/member/details/?id=999999").status_code == 404
    assert client.get("/admin/member/details/?id=abc").status_code == 404


def test_coordinator_may_not_delete_their_own_members(client, staff, people):
    login(client, "coord@test.org")
    csrf = token(client)
    response = client.post("/admin/member/delete/", data={"id": people["banda"].id, "csrf_token": csrf})
    assert response.status_code == 403
    assert people["banda"].deleted_at is None


def test_edit_member_saves_through_the_service(client, staff, tree, people):
    banda = people["banda"]
    login(client, "coord@test.org")
    page = get_ok(client, f"/admin/member/edit/?id={banda.id}")
    assert 'value="Mwila"' in page and 'value="+260977123456"' in page
    data = form_data(tree["w1"], first_name="Mwila", last_name="Banda-Phiri", phone="0977123457",
                     email="mwila@example.org", national_id="123456/10/1", status=None)
    data = {k: v for k, v in data.items() if v is not None}
    response = client.post(f"/admin/member/edit/?id={banda.id}", data={**data, "csrf_token": csrf_token_from(page)})
    assert response.status_code == 302
    db.session.refresh(banda)
    assert banda.last_name == "Banda-Phiri" and banda.phone == "+260977123457"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.update"))
    assert entry is not None and "last_name" in entry.changes


def test_edit_cannot_move_a_member_out_of_scope(client, staff, tree, people):
    banda = people["banda"]
    login(client, "coord@test.org")
    page = get_ok(client, f"/admin/member/edit/?id={banda.id}")
    assert "Lunte Ward 1" not in page
    data = form_data(tree["w3"], first_name="Mwila", last_name="Banda", phone="0977123456",
                     email="mwila@example.org")
    data.pop("status")
    response = client.post(f"/admin/member/edit/?id={banda.id}", data={**data, "csrf_token": csrf_token_from(page)})
    assert response.status_code == 200
    assert "outside your area" in text(response)
    db.session.refresh(banda)
    assert banda.unit_id == tree["w1"].id


# --- status ---------------------------------------------------------------------------


def test_status_change_is_recorded_in_history(client, staff, people):
    banda = people["banda"]
    login(client, "coord@test.org")
    details = get_ok(client, f"/admin/member/details/?id={banda.id}")
    assert 'value="suspended"' in details and 'value="pending"' not in details  # allowed transitions only
    response = client.post(f"/admin/member/status/{banda.id}",
                           data={"status": "suspended", "reason": "Missed three meetings",
                                 "csrf_token": csrf_token_from(details)})
    assert response.status_code == 302
    db.session.refresh(banda)
    assert banda.status == "suspended"
    change = db.session.scalar(select(MemberStatusChange).where(MemberStatusChange.member_id == banda.id,
                                                                MemberStatusChange.to_status == "suspended"))
    assert change.reason == "Missed three meetings" and change.actor_id == staff["coordinator"].id
    html = get_ok(client, f"/admin/member/details/?id={banda.id}")
    history = html[html.index('id="status-history"'):]
    assert "Missed three meetings" in history and "coord@test.org" in history
    assert "member.status" in html


def test_invalid_status_change_shows_the_error(client, staff, people):
    banda = people["banda"]  # active
    login(client, "coord@test.org")
    csrf = token(client, f"/admin/member/details/?id={banda.id}")
    response = client.post(f"/admin/member/status/{banda.id}",
                           data={"status": "pending", "reason": "Re-apply", "csrf_token": csrf})
    assert response.status_code == 200
    assert "A active member cannot become pending." in text(response)
    response = client.post(f"/admin/member/status/{banda.id}",
                           data={"status": "suspended", "reason": "", "csrf_token": csrf})
    assert "Give a reason for the status change." in text(response)
    db.session.refresh(banda)
    assert banda.status == "active"


# --- soft delete and restore ----------------------------------------------------------


def test_soft_delete_hides_and_restore_brings_back(client, staff, people):
    banda = people["banda"]
    login(client, "admin@test.org")
    listing = get_ok(client, LIST)
    assert member_count_shown(listing) == 6
    response = client.post("/admin/member/delete/",
                           data={"id": banda.id, "url": LIST, "csrf_token": csrf_token_from(listing)})
    assert response.status_code == 302
    assert banda.deleted_at is not None  # soft: the row stays
    listing = get_ok(client, LIST)
    assert member_count_shown(listing) == 5 and banda.membership_number not in rows(listing)
    assert client.get(f"/admin/member/details/?id={banda.id}").status_code == 404
    assert "No members match" in get_ok(client, f"{LIST}?search=0977123456")

    deleted = get_ok(client, "/admin/member/deleted/")
    assert banda.membership_number in deleted and "Restore" in deleted
    response = client.post("/admin/member/restore/", data={"id": banda.id, "csrf_token": csrf_token_from(deleted)})
    assert response.status_code == 302
    assert banda.deleted_at is None
    assert banda.membership_number in rows(get_ok(client, LIST))
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == str(banda.id))))
    assert {"member.delete", "member.restore"} <= actions


def test_restore_is_scoped(client, staff, make_user, tree, people):
    make_user("w3admin@test.org", "admin", tree["w3"])
    people["banda"].deleted_at = people["banda"].created_at
    db.session.flush()
    login(client, "w3admin@test.org")
    deleted = get_ok(client, "/admin/member/deleted/")
    assert people["banda"].membership_number not in deleted
    response = client.post("/admin/member/restore/",
                           data={"id": people["banda"].id, "csrf_token": csrf_token_from(deleted)})
    assert response.status_code == 404
    assert people["banda"].deleted_at is not None


def test_bulk_delete_action(client, staff, people):
    login(client, "admin@test.org")
    csrf = token(client)
    ids = [people["phiri"].id, people["tembo"].id]
    response = client.post("/admin/member/action/",
                           data={"action": "delete", "rowid": ids, "url": LIST, "csrf_token": csrf})
    assert response.status_code == 302
    assert people["phiri"].deleted_at is not None and people["tembo"].deleted_at is not None
    assert people["banda"].deleted_at is None


# --- photos ---------------------------------------------------------------------------


def test_photo_upload_is_reencoded_and_served_to_staff_only(client, staff, tree, people):
    banda = people["banda"]
    login(client, "admin@test.org")
    page = get_ok(client, f"/admin/member/edit/?id={banda.id}")
    data = form_data(tree["w1"], first_name="Mwila", last_name="Banda", phone="0977123456",
                     email="mwila@example.org", national_id="123456/10/1")
    data.pop("status")
    data["photo"] = (io.BytesIO(png_bytes()), "face.png")
    data["csrf_token"] = csrf_token_from(page)
    response = client.post(f"/admin/member/edit/?id={banda.id}", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    photo = db.session.get(MemberPhoto, banda.id)
    assert photo is not None and photo.content_type == "image/jpeg"
    assert member_photos.photo_bytes(banda.id)[0][:3] == b"\xff\xd8\xff" and max(photo.width, photo.height) <= 600

    served = client.get(f"/admin/member/photo/{banda.id}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.data[:3] == b"\xff\xd8\xff"
    assert f"/admin/member/photo/{banda.id}" in get_ok(client, f"/admin/member/details/?id={banda.id}")
    assert client.get(f"/admin/member/photo/{people['phiri'].id}").status_code == 404  # has none

    client.post("/logout", data={"csrf_token": csrf_token_from(get_ok(client, LIST))})
    assert client.get(f"/admin/member/photo/{banda.id}").status_code == 302  # to the login page


def test_text_file_renamed_png_is_refused(client, staff, tree):
    login(client, "coord@test.org")
    data = {**form_data(tree["w1"]), "csrf_token": token(client, "/admin/member/new/")}
    data["photo"] = (io.BytesIO(b"just some text, not a picture\n" * 10), "face.png")
    response = client.post("/admin/member/new/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert "The photo must be a JPEG or PNG image." in text(response)
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
    assert db.session.scalar(select(func.count()).select_from(MemberPhoto)) == 0


def test_create_with_photo(client, staff, tree):
    login(client, "coord@test.org")
    data = {**form_data(tree["w1"]), "csrf_token": token(client, "/admin/member/new/")}
    data["photo"] = (io.BytesIO(png_bytes((300, 300))), "me.png")
    assert client.post("/admin/member/new/", data=data, content_type="multipart/form-data").status_code == 302
    member = db.session.scalar(select(Member).where(Member.last_name == "Mulenga"))
    assert member.photo is not None and member_photos.photo_bytes(member.id)[0][:2] == b"\xff\xd8"


def test_pages_of_a_subtree_are_newest_first_without_gaps(client, staff, tree, make_member):
    made = [make_member(tree["w1"] if i % 2 else tree["w2"]) for i in range(25)]
    make_member(tree["w3"])  # outside the constituency
    login(client, "admin@test.org")
    numbers = []
    for page in (0, 1):
        html = rows(get_ok(client, f"{LIST}?unit={tree['c1'].id}&page={page}"))
        numbers += re.findall(r'col-membership_number">\s*(\S+)\s*<', html)
    expected = [m.membership_number for m in sorted(made, key=lambda m: m.id, reverse=True)]
    assert numbers == expected
