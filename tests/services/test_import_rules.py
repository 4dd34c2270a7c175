"""Imports write through the member service's bulk functions, so every rule of the single path follows.

Importing a member as expelled revokes their card (before, the card stayed
active and the public page said "valid"); a new member starts as pending or
active; the bulk functions refuse what create_member, update_member and
change_status refuse; and a clash the member service finds at write time
(another writer took a phone number meanwhile) is checked again, not written.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CardTransaction, Member, MemberStatusChange
from app.services import cards, members_bulk
from app.services import imports as svc
from app.services.errors import DuplicateError, ServiceError


@pytest.fixture(autouse=True)
def _uploads_in_tmp(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_UPLOAD_DIR", str(tmp_path / "uploads"))


def run(path, actor=None, **kw):
    info = svc.inspect_file(path)
    settings = svc.ImportSettings(mapping=svc.guess_mapping(info.headers), **kw)
    result = svc.import_file(actor, path, info, settings, filename=path.name, on_batch=lambda p: db.session.commit())
    db.session.commit()
    return result


def status_file(tmp_path, name, *rows):
    path = tmp_path / name
    path.write_text("ID No,Surname,First name,Ward,Status\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def carded(tree, make_member):
    """An active member of W1 with an active card."""
    member = make_member(tree["w1"], national_id="900001/11/1", first_name="Chanda", last_name="Mwansa")
    card = cards.issue_card(None, member)
    db.session.commit()
    return member, card


def test_importing_a_member_as_expelled_revokes_their_card_and_verify_says_so(
        client, tree, staff, carded, tmp_path):
    member, card = carded
    token = cards.card_token(card)
    assert 'data-status="valid"' in client.get(f"/verify/{token}").get_data(as_text=True)
    path = status_file(tmp_path, "expulsions.csv", "900001/11/1,Mwansa,Chanda,W1,expelled")
    result = run(path, staff["admin"])
    assert result.summary()["updated"] == 1 and result.bad_rows == []
    db.session.expire_all()
    assert db.session.get(Member, member.id).status == "expelled"
    card = db.session.get(type(card), card.id)
    assert card.status == "revoked"
    revoked = db.session.scalar(select(CardTransaction).where(CardTransaction.card_id == card.id,
                                                              CardTransaction.type == "revoked"))
    assert revoked.reason == "Member expelled: Imported from expulsions.csv" and revoked.actor_id == staff["admin"].id
    change = db.session.scalar(select(MemberStatusChange).where(MemberStatusChange.member_id == member.id,
                                                                MemberStatusChange.to_status == "expelled"))
    assert (change.from_status, change.reason, change.actor_id) == ("active", "Imported from expulsions.csv",
                                                                    staff["admin"].id)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.status",
                                                       AuditEntry.object_id == str(member.id)))
    assert entry.changes["status"] == {"before": "active", "after": "expelled"}
    assert entry.unit_id == tree["w1"].id
    page = client.get(f"/verify/{token}").get_data(as_text=True)
    assert 'data-status="revoked"' in page and "Chanda" not in page
    answer = client.post("/api/v1/cards/verify", json={"token": token}).get_json()
    assert answer["status"] == "revoked"


def test_suspension_and_return_by_import_drag_the_card_along(tree, carded, tmp_path):
    member, card = carded
    run(status_file(tmp_path, "suspend.csv", "900001/11/1,Mwansa,Chanda,W1,suspended"))
    db.session.refresh(card)
    assert card.status == "suspended"
    run(status_file(tmp_path, "return.csv", "900001/11/1,Mwansa,Chanda,W1,active"))
    db.session.refresh(card)
    assert card.status == "active"
    kinds = db.session.scalars(select(CardTransaction.type).where(CardTransaction.card_id == card.id)
                               .order_by(CardTransaction.id)).all()
    assert kinds == ["issued", "suspended", "reactivated"]


def test_a_new_member_starts_as_pending_or_active(tree, tmp_path):
    path = status_file(tmp_path, "new.csv", "900101/11/1,Banda,Ann,W1,expelled", "900102/11/1,Banda,Ben,W1,active")
    result = run(path)
    assert result.summary()["new"] == 1 and result.summary()["errors"] == 1
    assert dict(result.bad_rows) == {2: "Status: a new member starts as pending or active. "
                                        "Import them as one, then as expelled."}
    assert db.session.scalar(select(func.count()).select_from(Member)) == 1


def test_a_status_the_lifecycle_forbids_is_a_row_error(tree, make_member, tmp_path):
    member = make_member(tree["w1"], national_id="900201/11/1", status="pending")
    member.status = "deceased"
    db.session.commit()
    result = run(status_file(tmp_path, "back.csv", f"900201/11/1,{member.last_name},{member.first_name},W1,active"))
    assert result.bad_rows == [(2, "Status: a deceased member cannot become active. Allowed: none (final).")]


def row(unit, **values):
    return {"first_name": "New", "last_name": "Person", "unit_id": unit.id, **values}


def test_create_members_refuses_what_create_member_refuses(tree, staff, make_member):
    taken = make_member(tree["w1"], phone="0977111222", first_name="Taken", last_name="Phone")
    with pytest.raises(ServiceError, match="A new member starts as pending or active") as info:
        members_bulk.create_members(None, [row(tree["w1"]), row(tree["w1"], status="expelled")], reason="test")
    assert info.value.details["row"] == 1
    with pytest.raises(ServiceError, match="outside your area") as info:
        members_bulk.create_members(staff["coordinator"], [row(tree["w1"]), row(tree["w4"])], reason="test")
    assert info.value.details["row"] == 1
    with pytest.raises(DuplicateError, match=r"phone number already exists: Taken Phone \(M") as info:
        members_bulk.create_members(None, [row(tree["w1"], phone=taken.phone)], reason="test")
    assert info.value.details == {"field": "phone", "existing_id": taken.id, "row": 0}
    with pytest.raises(DuplicateError, match="Another row has the same email address"):
        members_bulk.create_members(None, [row(tree["w1"], email="a@example.org"),
                                           row(tree["w2"], email="a@example.org")], reason="test")
    assert db.session.scalar(select(func.count()).select_from(Member)) == 1
    numbers = members_bulk.create_members(staff["coordinator"], [row(tree["w1"], status="active", tags=["youth"])],
                                          reason="Imported from test")
    created = db.session.scalar(select(Member).where(Member.membership_number == numbers[0]))
    assert (created.status, [t.name for t in created.tags], created.surname_key) == ("active", ["youth"], "person")
    assert [(c.to_status, c.reason) for c in created.status_changes] == [("active", "Imported from test")]


def test_update_members_refuses_what_update_member_and_change_status_refuse(tree, staff, make_member):
    mine, outsider, gone = make_member(tree["w1"]), make_member(tree["w4"], phone="0977444001"), make_member(tree["w1"])
    gone.deleted_at = gone.created_at
    db.session.flush()
    with pytest.raises(ServiceError, match="A active member cannot become pending") as info:
        members_bulk.update_members(None, {mine.id: {"status": "pending"}}, reason="test")
    assert info.value.status == 409
    with pytest.raises(ServiceError, match="outside your area") as info:
        members_bulk.update_members(staff["coordinator"], {mine.id: {"notes": "a"}, outsider.id: {"notes": "b"}},
                                    reason="test")
    assert info.value.details["row"] == 1
    with pytest.raises(ServiceError, match="outside your area"):  # moving a member out of one's wards
        members_bulk.update_members(staff["coordinator"], {mine.id: {"unit_id": tree["w4"].id}}, reason="test")
    with pytest.raises(ServiceError, match="deleted; restore them first"):
        members_bulk.update_members(None, {gone.id: {"notes": "x"}}, reason="test")
    with pytest.raises(DuplicateError, match="A member with this phone number already exists.$"):
        members_bulk.update_members(staff["coordinator"], {mine.id: {"phone": outsider.phone}}, reason="test")
    members_bulk.update_members(staff["coordinator"], {mine.id: {"first_name": "Zed", "status": "suspended"}},
                                reason="Imported from test", source="test.csv")
    db.session.refresh(mine)
    assert (mine.first_name, mine.status) == ("Zed", "suspended")
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "Member",
                                                                 AuditEntry.object_id == str(mine.id),
                                                                 AuditEntry.action != "member.create")
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["member.status", "member.update"]


def test_a_clash_found_at_write_time_is_checked_again(tree, make_member, tmp_path, monkeypatch):
    """Another writer registers a member with the same phone between the check and the write."""
    path = tmp_path / "race.csv"
    path.write_text("Surname,First name,Cell,Ward\nBanda,Ann,0977333001,W1\nBanda,Ben,0977333002,W1\n")
    classify, create = svc.Importer._classify, members_bulk.create_members
    written = []

    def classify_then_race(self, rows):
        classify(self, rows)
        if not written:  # only the member service, at write time, can see this one
            make_member(tree["w2"], phone="0977333002", first_name="Quick", last_name="Other")

    def create_members(actor, rows, **kw):
        written.append(len(rows))
        return create(actor, rows, **kw)

    monkeypatch.setattr(svc.Importer, "_classify", classify_then_race)
    monkeypatch.setattr(members_bulk, "create_members", create_members)
    result = run(path)
    assert written == [2, 1]  # refused as a whole, checked again, then written without the taken phone
    assert result.summary()["new"] == 1 and result.summary()["duplicates"] == 1
    assert result.bad_rows[0][1].startswith("A member with this phone number already exists: Quick Other")


def test_a_batch_refused_twice_stops_the_import_naming_the_line(tree, tmp_path, monkeypatch):
    path = tmp_path / "stuck.csv"
    path.write_text("Surname,First name,Cell,Ward\nBanda,Ann,0977333001,W1\nBanda,Ben,0977333002,W1\n")

    def refused(index):
        exc = DuplicateError("A member with this phone number already exists.", field="phone")
        exc.details = {**exc.details, "row": index}
        raise exc

    monkeypatch.setattr(members_bulk, "create_members", lambda actor, rows, **kw: refused(1))
    with pytest.raises(ServiceError) as info:
        run(path)
    assert info.value.message == ("Line 3: A member with this phone number already exists. The rows before line 2 "
                                  "are imported; run the import again to finish.")
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
