"""Members over the API: CRUD, validation, duplicates, soft delete, paging and scope."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Member
from tests.api.conftest import assert_error

NEW = {"first_name": "Chanda", "last_name": "Mwila", "unit_id": None, "phone": "0977 123 456",
       "email": "Chanda@Example.org", "gender": "female", "date_of_birth": "1990-04-25",
       "national_id": "123456/78/1", "tags": ["youth", "Volunteer"], "notes": "Met at rally"}


def new_member(unit, **overrides):
    return {**NEW, "unit_id": unit.id, **overrides}


# --- create ---------------------------------------------------------------------------


def test_create_member(as_admin, tree):
    response = as_admin.post("/members", json=new_member(tree["w1"]))

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/members/{body['id']}"
    assert body["membership_number"].startswith("M")
    assert body["first_name"] == "Chanda" and body["last_name"] == "Mwila"
    assert body["phone"] == "+260977123456"
    assert body["email"] == "chanda@example.org"
    assert body["date_of_birth"] == "1990-04-25"
    assert body["status"] == "pending"
    assert body["unit_id"] == tree["w1"].id
    assert body["tags"] == ["volunteer", "youth"]
    assert body["other_names"] is None
    datetime.fromisoformat(body["created_at"])
    datetime.fromisoformat(body["updated_at"])
    assert set(body) == {
        "id", "membership_number", "first_name", "last_name", "other_names", "gender", "date_of_birth",
        "national_id", "phone", "email", "address", "unit_id", "status", "joined_on", "notes", "tags",
        "created_at", "updated_at",
    }
    # It was committed and audited.
    assert as_admin.get(f"/members/{body['id']}").get_json() == body
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.create")) is not None


def test_create_member_as_active(as_admin, tree):
    response = as_admin.post("/members", json={"first_name": "A", "last_name": "B", "unit_id": tree["w2"].id,
                                                "status": "active"})

    assert response.status_code == 201
    assert response.get_json()["status"] == "active"


def test_create_validation_errors_name_the_field(as_admin, tree):
    cases = [
        ({"last_name": "B", "unit_id": tree["w1"].id}, "first_name"),
        ({"first_name": "A", "last_name": " ", "unit_id": tree["w1"].id}, "last_name"),
        ({"first_name": "A", "last_name": "B"}, "unit_id"),
        (new_member(tree["w1"], phone="12"), "phone"),
        (new_member(tree["w1"], email="not-an-email"), "email"),
        (new_member(tree["w1"], gender="robot"), "gender"),
        (new_member(tree["w1"], date_of_birth="25/04/1990"), "date_of_birth"),
        (new_member(tree["w1"], date_of_birth="2999-01-01"), "date_of_birth"),
        (new_member(tree["w1"], national_id="?!"), "national_id"),
        (new_member(tree["w1"], status="deceased"), "status"),
        (new_member(tree["w1"], unit_id=999999), "unit_id"),
        (new_member(tree["w1"], favourite_colour="red"), "favourite_colour"),
        (new_member(tree["w1"], first_name="x" * 81), "first_name"),
    ]
    for payload, field in cases:
        body = assert_error(as_admin.post("/members", json=payload), 422, field)
        assert body["error"]
    assert as_admin.get("/members").get_json()["total"] == 0


def test_wrong_json_types_are_400_naming_the_field(as_admin, tree):
    cases = [
        (new_member(tree["w1"], unit_id="abc"), "unit_id"),
        (new_member(tree["w1"], unit_id=True), "unit_id"),
        (new_member(tree["w1"], unit_id=1.5), "unit_id"),
        (new_member(tree["w1"], gender=5), "gender"),
        (new_member(tree["w1"], tags="a,b"), "tags"),
        (new_member(tree["w1"], tags=[1, 2]), "tags"),
        (new_member(tree["w1"], first_name=None), "first_name"),
        (new_member(tree["w1"], status=["active"]), "status"),
        (new_member(tree["w1"], date_of_birth={"y": 1990}), "date_of_birth"),
    ]
    for payload, field in cases:
        assert_error(as_admin.post("/members", json=payload), 400, field)


def test_malformed_bodies_are_400(as_admin, tree):
    headers = {"Content-Type": "application/json"}
    assert_error(as_admin.post("/members", data="{not json", headers=headers), 400)
    assert_error(as_admin.post("/members", data="", headers=headers), 400)
    assert_error(as_admin.post("/members", data="null", headers=headers), 400)
    assert_error(as_admin.post("/members", json=[new_member(tree["w1"])]), 400)
    assert_error(as_admin.post("/members", json="Chanda"), 400)
    assert_error(as_admin.post("/members", data=b"\xff\xfe\x00", headers=headers), 400)
    assert_error(as_admin.post("/members", data="[" * 100_000, headers=headers), 400)
    assert_error(as_admin.post("/members", data="first_name=A&last_name=B"), 400)


def test_duplicates_are_409_and_name_the_member_in_scope(as_admin, make_member, tree):
    existing = make_member(tree["w3"], first_name="Grace", last_name="Banda", phone="0977000111")

    response = as_admin.post("/members", json=new_member(tree["w1"], phone="+260 977 000 111"))

    body = assert_error(response, 409, "phone")
    assert "Grace Banda" in body["error"]
    assert existing.membership_number in body["error"]
    assert body["details"]["existing_id"] == existing.id


def test_duplicates_out_of_scope_do_not_reveal_the_member(as_coord, make_member, tree):
    existing = make_member(tree["w3"], first_name="Grace", last_name="Banda", email="grace@example.org")

    response = as_coord.post("/members", json=new_member(tree["w1"], email="GRACE@example.org"))

    body = assert_error(response, 409, "email")
    assert "Grace" not in body["error"] and existing.membership_number not in body["error"]
    assert body["details"]["existing_id"] is None


# --- read and list --------------------------------------------------------------------


def test_get_member(as_admin, make_member, tree):
    member = make_member(tree["w2"], first_name="Ruth", tags=["choir"])

    response = as_admin.get(f"/members/{member.id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == member.id and body["first_name"] == "Ruth" and body["tags"] == ["choir"]


def test_missing_and_non_integer_ids_are_json_404(as_admin):
    for path in ("/members/999999", "/members/abc", "/members/-1", "/members/0", "/members/01", "/members/1.5",
                 "/members/2147483647", "/members/2147483648", "/members/99999999999999999999999",
                 "/members/%00", "/members/1%20"):
        assert_error(as_admin.get(path), 404)
        assert_error(as_admin.put(path, json={"first_name": "A"}), 404)
        assert_error(as_admin.delete(path), 404)


def test_list_members_with_paging_links(as_admin, make_member, tree):
    ids = [make_member(tree["w1"]).id for _ in range(5)]

    first = as_admin.get("/members?per_page=2").get_json()
    second = as_admin.get("/members?per_page=2&page=2").get_json()
    last = as_admin.get("/members?per_page=2&page=3").get_json()

    assert [m["id"] for m in first["items"]] == ids[:2]
    assert [m["id"] for m in second["items"]] == ids[2:4]
    assert [m["id"] for m in last["items"]] == ids[4:]
    assert first["total"] == 5 and first["page"] == 1 and first["per_page"] == 2
    assert first["links"] == {"self": "/api/v1/members?page=1&per_page=2",
                              "next": "/api/v1/members?page=2&per_page=2", "prev": None}
    assert second["links"]["prev"] == "/api/v1/members?page=1&per_page=2"
    assert last["links"]["next"] is None


def test_list_default_page_size_and_maximum(as_admin, make_member, tree):
    make_member(tree["w1"])
    body = as_admin.get("/members").get_json()
    assert body["per_page"] == 50 and body["page"] == 1

    assert as_admin.get("/members?per_page=200").status_code == 200
    assert_error(as_admin.get("/members?per_page=201"), 422, "per_page")
    assert_error(as_admin.get("/members?per_page=0"), 422, "per_page")
    assert_error(as_admin.get("/members?page=0"), 422, "page")
    assert_error(as_admin.get("/members?page=abc"), 400, "page")
    assert_error(as_admin.get("/members?page=1e3"), 400, "page")
    assert_error(as_admin.get("/members?unit_id=w1"), 400, "unit_id")


def test_huge_page_numbers_give_an_empty_page(as_admin, make_member, tree):
    make_member(tree["w1"])

    for page in ("1000000", "99999999999999999999"):
        response = as_admin.get(f"/members?page={page}&per_page=200")
        assert response.status_code == 200
        body = response.get_json()
        assert body["items"] == [] and body["total"] == 1 and body["links"]["next"] is None
        assert body["links"]["prev"] == "/api/v1/members?page=1&per_page=200"


def test_list_filters(as_admin, make_member, tree):
    smith = make_member(tree["w1"], first_name="Joseph", last_name="Smith", status="pending")
    make_member(tree["w2"], first_name="Mary", last_name="Smithers")
    phiri = make_member(tree["w3"], first_name="Peter", last_name="Phiri", email="peter@example.org")
    make_member(tree["w4"], first_name="Esther", last_name="Zulu")

    def ids(query):
        response = as_admin.get(f"/members?{query}")
        assert response.status_code == 200, response.get_json()
        return sorted(m["id"] for m in response.get_json()["items"])

    assert len(ids("q=smi")) == 2
    assert ids("q=jo+smi") == [smith.id]
    assert ids("q=peter@example.org") == [phiri.id]
    assert ids(f"q={smith.membership_number}") == [smith.id]
    assert ids("status=pending") == [smith.id]
    assert len(ids("status=active")) == 3
    assert len(ids("status=active,pending")) == 4
    assert len(ids("status=active&status=pending")) == 4
    assert len(ids(f"unit_id={tree['c1'].id}")) == 2
    assert ids(f"unit_id={tree['w3'].id}") == [phiri.id]
    assert len(ids(f"unit_id={tree['p1'].id}")) == 3
    assert ids("unit_id=999999") == []
    assert ids(f"q=smi&unit_id={tree['w1'].id}") == [smith.id]
    assert_error(as_admin.get("/members?status=sleeping"), 422, "status")
    links = as_admin.get(f"/members?q=smi&status=active&unit_id={tree['p1'].id}&per_page=1").get_json()["links"]
    assert links["self"] == f"/api/v1/members?page=1&per_page=1&q=smi&status=active&unit_id={tree['p1'].id}"


# --- update ---------------------------------------------------------------------------


def test_put_is_a_partial_update(as_admin, make_member, tree):
    member = make_member(tree["w1"], first_name="Old", phone="0977000222", tags=["a"])

    response = as_admin.put(f"/members/{member.id}", json={"first_name": "New", "tags": ["b", "c"],
                                                           "notes": None})

    assert response.status_code == 200
    body = response.get_json()
    assert body["first_name"] == "New"
    assert body["phone"] == "+260977000222"  # untouched
    assert body["tags"] == ["b", "c"]
    assert as_admin.get(f"/members/{member.id}").get_json()["first_name"] == "New"


def test_put_changes_status_through_the_lifecycle(as_admin, make_member, tree):
    member = make_member(tree["w1"], status="active")

    suspended = as_admin.put(f"/members/{member.id}", json={"status": "suspended", "status_reason": "Arrears"})
    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"

    assert_error(as_admin.put(f"/members/{member.id}", json={"status": "active"}), 422, "reason")
    assert_error(as_admin.put(f"/members/{member.id}", json={"status": "pending", "status_reason": "x"}),
                 409, "status")
    assert_error(as_admin.put(f"/members/{member.id}", json={"status": "zombie", "status_reason": "x"}),
                 422, "status")
    assert as_admin.get(f"/members/{member.id}").get_json()["status"] == "suspended"


def test_failed_update_changes_nothing(as_admin, make_member, tree):
    member = make_member(tree["w1"], status="active", first_name="Keep")

    response = as_admin.put(f"/members/{member.id}", json={"status": "suspended", "status_reason": "x",
                                                           "first_name": "Changed", "email": "bad"})

    assert_error(response, 422, "email")
    body = as_admin.get(f"/members/{member.id}").get_json()
    assert body["status"] == "active" and body["first_name"] == "Keep"


def test_update_validation_and_duplicates(as_admin, make_member, tree):
    member = make_member(tree["w1"])
    other = make_member(tree["w1"], national_id="AB1234")

    assert_error(as_admin.put(f"/members/{member.id}", json={"last_name": ""}), 422, "last_name")
    assert_error(as_admin.put(f"/members/{member.id}", json={"id": 5}), 422, "id")
    assert_error(as_admin.put(f"/members/{member.id}", json={"unit_id": "x"}), 400, "unit_id")
    assert_error(as_admin.put(f"/members/{member.id}", json=["x"]), 400)
    body = assert_error(as_admin.put(f"/members/{member.id}", json={"national_id": "ab1234"}), 409, "national_id")
    assert body["details"]["existing_id"] == other.id


# --- delete ---------------------------------------------------------------------------


def test_soft_deleted_member_disappears_from_list_and_detail(as_admin, make_member, tree):
    member = make_member(tree["w1"])
    keep = make_member(tree["w1"])

    response = as_admin.delete(f"/members/{member.id}")

    assert response.status_code == 204 and response.get_data() == b""
    listing = as_admin.get("/members").get_json()
    assert [m["id"] for m in listing["items"]] == [keep.id] and listing["total"] == 1
    assert_error(as_admin.get(f"/members/{member.id}"), 404)
    assert_error(as_admin.put(f"/members/{member.id}", json={"first_name": "Zombie"}), 404)
    assert_error(as_admin.delete(f"/members/{member.id}"), 404)
    row = db.session.get(Member, member.id)
    db.session.refresh(row)
    assert row.deleted_at is not None  # still on record


# --- scope ----------------------------------------------------------------------------


def test_coordinator_lists_only_their_ward(as_coord, make_member, tree):
    mine = [make_member(tree["w1"]).id for _ in range(3)]
    make_member(tree["w2"])
    make_member(tree["w3"])
    make_member(tree["w4"])

    body = as_coord.get("/members").get_json()

    assert sorted(m["id"] for m in body["items"]) == mine
    assert body["total"] == 3
    # Filtering by a wider unit never widens the scope.
    assert as_coord.get(f"/members?unit_id={tree['p1'].id}").get_json()["total"] == 3
    assert as_coord.get(f"/members?unit_id={tree['w3'].id}").get_json()["total"] == 0


def test_coordinator_gets_404_outside_their_ward(as_coord, make_member, tree):
    other = make_member(tree["w3"])

    for response in (
        as_coord.get(f"/members/{other.id}"),
        as_coord.put(f"/members/{other.id}", json={"first_name": "Hijack"}),
        as_coord.delete(f"/members/{other.id}"),
    ):
        body = assert_error(response, 404)
        assert body == assert_error(as_coord.get("/members/999999"), 404)  # indistinguishable from missing
    assert db.session.get(Member, other.id).first_name != "Hijack"


def test_coordinator_works_in_their_ward(as_coord, make_member, tree):
    member = make_member(tree["w1"])

    assert as_coord.get(f"/members/{member.id}").status_code == 200
    assert as_coord.put(f"/members/{member.id}", json={"first_name": "Edited"}).status_code == 200
    created = as_coord.post("/members", json=new_member(tree["w1"]))
    assert created.status_code == 201
    # No members.delete in the seed role: visible, so 403 rather than 404.
    body = assert_error(as_coord.delete(f"/members/{member.id}"), 403)
    assert body["details"] == {"permission": "members.delete"}


def test_coordinator_cannot_create_or_move_members_outside_their_ward(as_coord, make_member, tree):
    member = make_member(tree["w1"])

    body = assert_error(as_coord.post("/members", json=new_member(tree["w3"])), 422, "unit_id")
    assert "outside your area" in body["error"]
    assert_error(as_coord.put(f"/members/{member.id}", json={"unit_id": tree["w3"].id}), 422, "unit_id")
    assert as_coord.get(f"/members/{member.id}").get_json()["unit_id"] == tree["w1"].id


def test_member_role_has_no_access_to_members(as_member, make_member, tree):
    member = make_member(tree["w1"])

    body = assert_error(as_member.get("/members"), 403)
    assert body["details"] == {"permission": "members.read"}
    assert_error(as_member.get(f"/members/{member.id}"), 403)
    assert_error(as_member.post("/members", json=new_member(tree["w1"])), 403)
    assert_error(as_member.put(f"/members/{member.id}", json={"first_name": "X"}), 403)
    assert_error(as_member.delete(f"/members/{member.id}"), 403)
