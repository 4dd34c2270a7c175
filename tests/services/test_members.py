"""Member registry rules: normalisation, duplicates, status lifecycle, soft delete, photos."""

import io

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Member, MemberStatusChange
from app.services import member_photos, member_search, members
from app.services.errors import DuplicateError, ServiceError


def _png(width=1200, height=800, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def test_create_normalises_fields_and_numbers_members(ctx, tree, staff):
    member = members.create_member(staff["admin"], {
        "first_name": " Mwila ", "last_name": "Müller", "unit_id": tree["w1"].id,
        "phone": "097 123 4567", "email": " Mwila@Example.ORG ", "national_id": "123456 / 10/1",
        "tags": "Youth, women , youth",
    })
    assert member.first_name == "Mwila"
    assert member.phone == "+260971234567"
    assert member.email == "mwila@example.org"
    assert member.national_id == "123456/10/1"
    assert member.surname_key == "muller"
    assert [t.name for t in member.tags] == ["women", "youth"]
    assert member.status == "pending"
    assert member.membership_number.startswith("M") and len(member.membership_number) == 8
    second = members.create_member(staff["admin"], {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id})
    assert int(second.membership_number[1:]) == int(member.membership_number[1:]) + 1
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.create",
                                                       AuditEntry.object_id == str(member.id)))
    assert entry.actor_id == staff["admin"].id and entry.unit_id == tree["w1"].id
    assert entry.changes["phone"]["after"] == "+260971234567"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "12", "not a valid phone number"),
        ("phone", "call me", "not a phone number"),
        ("email", "nobody@", "not a valid email address"),
        ("date_of_birth", "25/04/1990", "must be a date"),
        ("date_of_birth", "2999-01-01", "must be in the past"),
        ("gender", "robot", "Gender must be one of"),
        ("first_name", "  ", "First name is required"),
        ("national_id", "a!", "national ID number is 4-40"),
    ],
)
def test_invalid_fields_are_reported_on_the_field(ctx, tree, field, value, message):
    data = {"first_name": "Ann", "last_name": "Banda", "unit_id": tree["w1"].id, field: value}
    with pytest.raises(ServiceError) as caught:
        members.create_member(None, data)
    assert caught.value.field == field
    assert message in caught.value.message
    assert db.session.scalar(select(Member).where(Member.last_name == "Banda")) is None


def test_duplicates_name_the_member_only_within_scope(ctx, tree, staff, make_member):
    existing = make_member(tree["w3"], first_name="Grace", last_name="Phiri", phone="+260971111111",
                           national_id="111111/11/1", email="grace@example.org")
    with pytest.raises(DuplicateError) as in_scope:
        members.create_member(staff["admin"], {"first_name": "X", "last_name": "Y", "unit_id": tree["w1"].id,
                                               "phone": "0971111111"})
    assert in_scope.value.field == "phone"
    assert "Grace Phiri" in in_scope.value.message and existing.membership_number in in_scope.value.message
    with pytest.raises(DuplicateError) as out_of_scope:
        members.create_member(staff["coordinator"], {"first_name": "X", "last_name": "Y", "unit_id": tree["w1"].id,
                                                     "national_id": "111111/11/1"})
    assert out_of_scope.value.message == "A member with this ID number already exists."
    assert out_of_scope.value.existing_id is None
    with pytest.raises(DuplicateError) as by_email:
        members.create_member(None, {"first_name": "X", "last_name": "Y", "unit_id": tree["w1"].id,
                                     "email": "GRACE@example.org"})
    assert by_email.value.field == "email"


def test_update_keeps_own_values_and_refuses_anothers(ctx, tree, make_member):
    a = make_member(tree["w1"], phone="+260971111111")
    b = make_member(tree["w1"], phone="+260972222222")
    members.update_member(None, a, {"phone": "0971111111", "first_name": "Renamed"})
    assert a.first_name == "Renamed"
    with pytest.raises(DuplicateError):
        members.update_member(None, b, {"phone": "+260971111111"})


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("pending", "active", True),
        ("active", "suspended", True),
        ("suspended", "active", True),
        ("active", "lapsed", True),
        ("lapsed", "active", True),
        ("active", "expelled", True),
        ("expelled", "active", False),
        ("expelled", "pending", True),
        ("deceased", "active", False),
        ("pending", "suspended", False),
        ("resigned", "active", True),
    ],
)
def test_status_transitions(ctx, tree, staff, make_member, start, target, allowed):
    member = make_member(tree["w1"], status="pending")
    member.status = start
    db.session.flush()
    if allowed:
        change = members.change_status(staff["admin"], member, target, "Committee decision")
        assert member.status == target
        assert (change.from_status, change.to_status, change.actor_id) == (start, target, staff["admin"].id)
    else:
        with pytest.raises(ServiceError) as caught:
            members.change_status(staff["admin"], member, target, "Committee decision")
        assert f"A {start} member cannot become {target}" in caught.value.message
        assert member.status == start


def test_status_change_needs_a_reason_and_is_recorded(ctx, tree, staff, make_member):
    member = make_member(tree["w1"], status="active")
    with pytest.raises(ServiceError, match="Give a reason"):
        members.change_status(staff["admin"], member, "suspended", "  ")
    members.change_status(staff["admin"], member, "suspended", "Unpaid dues")
    history = db.session.scalars(select(MemberStatusChange).where(MemberStatusChange.member_id == member.id)
                                 .order_by(MemberStatusChange.id)).all()
    assert [(h.from_status, h.to_status, h.reason) for h in history] == [
        (None, "active", "Registered"), ("active", "suspended", "Unpaid dues")]


def test_soft_delete_and_restore(ctx, tree, staff, make_member):
    member = make_member(tree["w1"])
    members.delete_member(staff["admin"], member)
    assert member.is_deleted and member.deleted_by_id == staff["admin"].id
    assert db.session.get(Member, member.id) is not None
    with pytest.raises(ServiceError, match="restore them first"):
        members.update_member(staff["admin"], member, {"first_name": "Z"})
    members.restore_member(staff["admin"], member)
    assert not member.is_deleted
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == str(member.id))).all()
    assert "member.delete" in actions and "member.restore" in actions


def test_coordinator_cannot_create_or_move_outside_their_ward(ctx, tree, staff, make_member):
    with pytest.raises(ServiceError, match="outside your area") as caught:
        members.create_member(staff["coordinator"], {"first_name": "A", "last_name": "B", "unit_id": tree["w3"].id})
    assert caught.value.field == "unit_id"
    member = members.create_member(staff["coordinator"], {"first_name": "A", "last_name": "B", "unit_id": tree["w1"].id})
    with pytest.raises(ServiceError, match="outside your area"):
        members.update_member(staff["coordinator"], member, {"unit_id": tree["w2"].id})
    assert member.unit_id == tree["w1"].id


def test_photo_is_checked_by_content_and_reencoded(ctx, tree, make_member):
    member = make_member(tree["w1"])
    photo = members.set_photo(None, member, _png())
    assert photo.content_type == "image/jpeg"
    assert max(photo.width, photo.height) == 600
    assert Image.open(io.BytesIO(member_photos.photo_bytes(member.id)[0])).format == "JPEG"
    with pytest.raises(ServiceError, match="JPEG or PNG"):
        members.set_photo(None, member, b"GIF89a" + b"\x00" * 100)
    with pytest.raises(ServiceError, match="JPEG or PNG"):
        members.set_photo(None, member, b"just text pretending to be a png")
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    with pytest.raises(ServiceError, match="JPEG or PNG"):
        members.set_photo(None, member, gif.getvalue())


def test_photo_size_limit(ctx, app, tree, make_member, monkeypatch):
    member = make_member(tree["w1"])
    monkeypatch.setitem(app.config, "PHOTO_MAX_BYTES", 1000)
    with pytest.raises(ServiceError, match="too large"):
        members.set_photo(None, member, _png(400, 400))


def test_search_clause_finds_by_each_identifier(ctx, tree, make_member):
    jo = make_member(tree["w1"], first_name="Joseph", last_name="Mwanza", phone="+260975555555",
                     national_id="222222/22/2", email="jo@example.org")
    make_member(tree["w1"], first_name="Mary", last_name="Mwale")

    def find(q):
        return {m.id for m in db.session.scalars(select(Member).where(member_search.search_clause(q)))}

    assert find("mwan") == {jo.id}
    assert len(find("MW")) == 2
    assert find("0975555555") == {jo.id}
    assert find("+260 97 555 5555") == {jo.id}
    assert find(jo.membership_number.lower()) == {jo.id}
    assert find("222222/22/2") == {jo.id}
    assert find("JO@example.org") == {jo.id}
    assert find("jos mwa") == {jo.id}
    assert find("zzz") == set()
    assert member_search.search_clause("   ") is None


def test_search_of_punctuation_only_finds_nothing(ctx, tree, make_member):
    make_member(tree["w1"], last_name="Banda")
    assert db.session.scalars(select(Member).where(member_search.search_clause(", ,"))).all() == []


def test_a_member_has_at_most_50_tags(ctx, tree):
    data = {"first_name": "Ann", "last_name": "Tagged", "unit_id": tree["w1"].id}
    fifty = [f"tag{i}" for i in range(50)]
    member = members.create_member(None, {**data, "tags": fifty + ["TAG0", " tag1 "]})  # repeats count once
    assert len(member.tags) == 50
    with pytest.raises(ServiceError, match="at most 50 tags") as caught:
        members.update_member(None, member, {"tags": fifty + ["one-more"]})
    assert caught.value.field == "tags"
    assert len(member.tags) == 50
