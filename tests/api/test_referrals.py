"""The referrals API (issue 13), as its callers see it: answers, scope, refusals, the ledger, a member's own.

The data is made through the services, as joining and approval make it:
Ada (ward W1, with a portal login) brought in two members who are now active
(credited: 10 points each), one who joined and waits for approval
(registered) and invited one more (pending); Ben (W2) and Dora (W4, the other
province) have one credited referral each and Dora an invitation too. The
figures each test expects are counted from the rows in the test, never
copied from the services. Every answer is also checked against the OpenAPI
document by the client (``tests/api/conftest.py``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailMessage, Member, PointsEntry, Referral, ReferralCode, Unit
from app.services import members as member_service
from app.services import referrals as referral_service
from tests.api.conftest import assert_error

W1_ONLY = {"w1"}


def joined(referrer: Member, unit: Unit, make_member, *, active: bool = False, now: datetime | None = None):
    """Someone joins with ``referrer``'s code (pending, as after the join form); approved when ``active``."""
    newcomer = make_member(unit, status="pending")
    referral = referral_service.record_join(newcomer, referral_service.code_for(referrer), now=now)
    if active:
        member_service.change_status(None, newcomer, "active", "Approved")
    return referral


@pytest.fixture()
def world(tree, staff, make_member, make_user):
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda", phone="+260971000001",
                      email="ada@example.org")
    ben = make_member(tree["w2"], first_name="Ben", last_name="Phiri", phone="+260971000002")
    dora = make_member(tree["w4"], first_name="Dora", last_name="Zulu", phone="+260971000003")
    make_user("ada@test.org", "member", member=ada)
    found = {
        "ada": ada, "ben": ben, "dora": dora,
        "ada_credited": [joined(ada, tree["w1"], make_member, active=True,
                                now=datetime(2027, 1, 5, 9, tzinfo=UTC)) for _ in range(2)],
        "ada_registered": joined(ada, tree["w2"], make_member, now=datetime(2027, 2, 1, 9, tzinfo=UTC)),
        "ada_pending": referral_service.record_prospect(ada, "Chola Mwansa", "0971000011", None,
                                                        now=datetime(2027, 3, 1, 9, tzinfo=UTC)),
        "ben_credited": joined(ben, tree["w2"], make_member, active=True),
        "dora_credited": joined(dora, tree["w4"], make_member, active=True),
        "dora_pending": referral_service.record_prospect(dora, "Esther Tembo", "0971000012", None),
    }
    db.session.commit()
    return found


@pytest.fixture()
def as_ada(api, world):
    return api.login("ada@test.org")


def referrals_where(units: set[str], tree) -> list[Referral]:
    """The referrals whose referrer belongs to these wards, read from the table."""
    ids = {tree[key].id for key in units}
    return [r for r in db.session.scalars(select(Referral)) if r.referrer.unit_id in ids]


def ledger_balance(member: Member) -> int:
    return sum(db.session.scalars(select(PointsEntry.points).where(PointsEntry.member_id == member.id)))


def listed(client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- the list ----------------------------------------------------------------------------------


def test_staff_list_shows_every_referral_with_its_people_and_points(as_admin, world, tree):
    body = listed(as_admin, "/referrals?per_page=200")
    rows = db.session.scalars(select(Referral)).all()
    assert body["total"] == len(rows) == 7
    assert {item["id"] for item in body["items"]} == {r.id for r in rows}
    by_id = {item["id"]: item for item in body["items"]}

    credited, ada = world["ada_credited"][0], world["ada"]
    item = by_id[credited.id]
    assert (item["status"], item["status_label"], item["source"]) == ("credited", "Credited", "code")
    assert item["referrer"] == {"id": ada.id, "name": "Ada Banda", "membership_number": ada.membership_number,
                                "unit_id": tree["w1"].id}
    referred = credited.referred_member
    assert item["referred_member"] == {"id": referred.id, "name": referred.full_name,
                                       "membership_number": referred.membership_number}
    assert item["code"] == referral_service.code_for(ada) and item["points"] == 10
    assert item["credited_at"] is not None and item["closed_at"] is None

    pending = by_id[world["ada_pending"].id]
    assert (pending["status"], pending["status_label"], pending["source"]) == ("pending", "Invited", "prospect")
    assert (pending["prospect_name"], pending["prospect_phone"], pending["prospect_email"]) == (
        "Chola Mwansa", "+260971000011", None)
    assert pending["referred_member"] is None and pending["points"] == 0
    # newest first
    created = [(r.created_at, r.id) for r in rows]
    assert [item["id"] for item in body["items"]] == [i for _c, i in sorted(created, reverse=True)]


def test_a_coordinator_lists_and_counts_only_their_wards(as_coord, world, tree):
    body = listed(as_coord, "/referrals?per_page=200")
    mine = referrals_where(W1_ONLY, tree)
    assert body["total"] == len(mine) == 4
    assert {item["id"] for item in body["items"]} == {r.id for r in mine}
    assert all(item["referrer"]["unit_id"] == tree["w1"].id for item in body["items"])
    # a filter never widens it
    credited = listed(as_coord, "/referrals?status=credited")
    assert {i["id"] for i in credited["items"]} == {r.id for r in mine if r.status == "credited"}
    assert listed(as_coord, f"/referrals?referrer_id={world['ben'].id}")["total"] == 0
    assert_error(as_coord.get(f"/referrals?unit_id={tree['w2'].id}"), 404)
    assert_error(as_coord.get(f"/referrals?unit_id={tree['w4'].id}"), 404)


def test_list_filters(as_admin, world, tree):
    every = db.session.scalars(select(Referral)).all()

    def ids(query: str) -> set[int]:
        return {item["id"] for item in listed(as_admin, "/referrals?per_page=200&" + query)["items"]}

    assert ids("status=pending") == {r.id for r in every if r.status == "pending"}
    assert ids("status=CREDITED&source=code") == {r.id for r in every if r.status == "credited"}
    assert ids("source=prospect") == {world["ada_pending"].id, world["dora_pending"].id}
    assert ids(f"referrer_id={world['ada'].id}") == {r.id for r in every if r.referrer_id == world["ada"].id}
    assert ids(f"unit_id={tree['c1'].id}") == {r.id for r in referrals_where({"w1", "w2"}, tree)}
    assert ids("q=chola") == {world["ada_pending"].id}
    assert ids("q=Zulu") == {r.id for r in every if r.referrer_id == world["dora"].id}
    assert ids("since=2027-01-05&until=2027-02-01") == {r.id for r in world["ada_credited"]} | {
        world["ada_registered"].id}
    assert ids("since=2027-03-01&until=2027-03-01") == {world["ada_pending"].id}
    assert ids("q=") == {r.id for r in every}


def test_list_links_keep_the_filters_and_pages_past_the_end_are_empty(as_admin, world):
    body = listed(as_admin, "/referrals?status=credited&per_page=2")
    assert body["total"] == 4 and len(body["items"]) == 2
    assert body["links"]["next"] == "/api/v1/referrals?page=2&per_page=2&status=credited"
    assert listed(as_admin, "/referrals?page=3&per_page=2&status=credited")["items"] == []
    huge = listed(as_admin, "/referrals?page=99999999999999999999")
    assert huge["items"] == [] and huge["total"] == 7


@pytest.mark.parametrize(("query", "status", "field"), [
    ("status=bogus", 422, "status"),
    ("source=sms", 422, "source"),
    ("unit_id=abc", 400, "unit_id"),
    ("referrer_id=0", 422, "referrer_id"),
    ("since=2027-13-01", 422, "since"),
    ("until=yesterday", 422, "until"),
    ("since=2027-03-02&until=2027-03-01", 422, "until"),
    ("q=" + "x" * 101, 422, "q"),
    ("q=" + "x" * 5000, 422, "q"),
    ("q=a%00b", 400, "q"),
    ("per_page=201", 422, "per_page"),
    ("page=0", 422, "page"),
])
def test_bad_filters_are_json_errors_naming_the_field(as_admin, world, query, status, field):
    body = assert_error(as_admin.get("/referrals?" + query), status, field)
    if status == 422:
        assert field in body["details"]["fields"]


def test_bad_status_lists_the_choices(as_admin, world):
    body = assert_error(as_admin.get("/referrals?status=bogus"), 422, "status")
    assert body["details"]["allowed"] == ["pending", "registered", "credited", "expired", "rejected"]


def test_the_list_needs_referrals_read(as_member, as_ada, api):
    for client in (as_member, as_ada):
        body = assert_error(client.get("/referrals"), 403)
        assert body["details"] == {"permission": "referrals.read"}
    assert_error(api.get("/referrals"), 401)


def test_a_members_referrals(as_admin, as_coord, as_member, world, tree):
    ada = world["ada"]
    body = listed(as_admin, f"/members/{ada.id}/referrals")
    assert {i["id"] for i in body["items"]} == {r.id for r in db.session.scalars(
        select(Referral).where(Referral.referrer_id == ada.id))}
    assert body["total"] == 4 and all(i["referrer"]["id"] == ada.id for i in body["items"])
    assert listed(as_coord, f"/members/{ada.id}/referrals")["total"] == 4
    assert_error(as_coord.get(f"/members/{world['ben'].id}/referrals"), 404)
    assert_error(as_coord.get(f"/members/{world['dora'].id}/referrals"), 404)
    assert_error(as_member.get(f"/members/{ada.id}/referrals"), 403)
    assert_error(as_admin.get("/members/2147483647/referrals"), 404)


# --- one referral ------------------------------------------------------------------------------


def test_reading_one_referral_follows_the_scope(as_admin, as_coord, as_ada, world):
    ada_referral, ben_referral = world["ada_credited"][0], world["ben_credited"]
    assert listed(as_admin, f"/referrals/{ben_referral.id}")["id"] == ben_referral.id
    assert listed(as_coord, f"/referrals/{ada_referral.id}")["points"] == 10
    assert_error(as_coord.get(f"/referrals/{ben_referral.id}"), 404)  # another ward: as if it did not exist
    assert_error(as_coord.get(f"/referrals/{world['dora_pending'].id}"), 404)
    assert_error(as_coord.get("/referrals/2147483647"), 404)
    # the referrer reads their own, and only their own
    own = listed(as_ada, f"/referrals/{world['ada_pending'].id}")
    assert own["prospect_phone"] == "+260971000011"
    assert_error(as_ada.get(f"/referrals/{ben_referral.id}"), 403)


def test_staff_who_are_the_referrer_read_their_own_referrals_outside_their_area(api, world, make_user, tree):
    """Dora lives in W4 and coordinates W1: W1's referrals as staff, her own as their referrer, nothing else."""
    from app.services import rbac

    user = make_user("dora@test.org", "ward_coordinator", tree["w1"], member=world["dora"])
    rbac.assign_role(None, user, rbac.role_by_name("member"), None)
    dora = api.login("dora@test.org")
    assert listed(dora, f"/referrals/{world['dora_pending'].id}")["referrer"]["id"] == world["dora"].id
    assert listed(dora, f"/referrals/{world['ada_pending'].id}")["id"] == world["ada_pending"].id
    assert_error(dora.get(f"/referrals/{world['ben_credited'].id}"), 404)
    assert {i["id"] for i in listed(dora, "/referrals?per_page=200")["items"]} == {
        r.id for r in referrals_where(W1_ONLY, tree)}  # the list is her staff area only


def test_a_member_invites_someone_and_the_invitation_is_mailed_after_the_commit(as_ada, world, app, smtp_mail):
    response = as_ada.post("/referrals", json={"name": " Mary Tembo ", "email": "Mary.Tembo@Example.org"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["status"], body["source"], body["prospect_name"], body["prospect_email"]) == (
        "pending", "prospect", "Mary Tembo", "mary.tembo@example.org")
    assert body["referrer"]["id"] == world["ada"].id and body["points"] == 0
    assert response.headers["Location"] == f"/api/v1/referrals/{body['id']}"
    [received] = smtp_mail.wait_for(1)
    assert received["To"] == "mary.tembo@example.org"
    link = f"{app.config['PUBLIC_URL']}/join?ref={referral_service.code_for(world['ada'])}"
    assert link in received.get_body(("plain",)).get_content()

    again = as_ada.post("/referrals", json={"name": "Mary", "email": "mary.tembo@example.org"})
    body = assert_error(again, 409, "email")
    assert body["error"] == "You have already recorded this person."
    assert db.session.query(MailMessage).filter_by(kind="referrals.invite").count() == 1  # the refusal sent none


def test_a_member_naming_themselves_invites_as_themselves(as_ada, world):
    response = as_ada.post("/referrals", json={"name": "Peter", "phone": "0971000021", "referrer_id": world["ada"].id})
    assert response.status_code == 201 and response.get_json()["referrer"]["id"] == world["ada"].id
    assert_error(as_ada.post("/referrals", json={"name": "Paul", "phone": "0971000022",
                                                 "referrer_id": world["ben"].id}), 403)


def test_staff_record_an_invitation_for_a_member(as_admin, as_coord, as_super, world):
    response = as_admin.post("/referrals", json={"name": "Grace Lungu", "phone": "0971000031",
                                                 "referrer_id": world["ben"].id})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["referrer"]["id"] == world["ben"].id and body["prospect_phone"] == "+260971000031"
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.create"))
    assert audit is not None and audit.object_id == str(body["id"])

    refused = assert_error(as_coord.post("/referrals", json={"name": "X", "phone": "0971000032",
                                                             "referrer_id": world["ada"].id}), 403)
    assert refused["details"] == {"permission": "referrals.update"}
    assert_error(as_admin.post("/referrals", json={"name": "X", "phone": "0971000032",
                                                   "referrer_id": 2147483647}), 422, "referrer_id")
    # a login without a member record has nobody to invite as
    assert_error(as_super.post("/referrals", json={"name": "X", "phone": "0971000032"}), 404)


@pytest.mark.parametrize(("body", "status", "field"), [
    ({}, 422, "name"),
    ({"name": "  ", "phone": "0971000041"}, 422, "name"),
    ({"name": "X"}, 422, "phone"),
    ({"name": "X" * 161, "phone": "0971000041"}, 422, "name"),
    ({"name": "X" * 100_000, "phone": "0971000041"}, 422, "name"),
    ({"name": "X", "phone": "9" * 5000}, 422, "phone"),
    ({"name": "X", "phone": "12"}, 422, "phone"),
    ({"name": "X", "email": "not-an-email"}, 422, "email"),
    ({"name": "X", "email": "a@b.org", "extra": 1}, 422, "extra"),
    ({"name": 5, "phone": "0971000041"}, 400, "name"),
    ({"name": "X", "phone": "0971000041", "referrer_id": "3"}, 400, "referrer_id"),
    ({"name": "X", "phone": "+260971000001"}, 422, "phone"),  # Ada's own number: no self-referral
    ({"name": "X", "phone": "0971000011"}, 409, "phone"),  # invited already (by Ada)
    ({"name": "X", "phone": "0971000012"}, 409, "phone"),  # invited already, by Dora
    ({"name": "X", "phone": "+260971000002"}, 409, "phone"),  # Ben is a member already
])
def test_bad_invitations_are_refused_naming_the_field(as_ada, world, body, status, field):
    before = db.session.query(Referral).count()
    assert_error(as_ada.post("/referrals", json=body), status, field)
    assert db.session.query(Referral).count() == before


def test_invitation_errors_are_reported_at_once(as_ada, world):
    body = assert_error(as_ada.post("/referrals", json={"name": "X", "phone": "12", "email": "nope"}), 422)
    assert set(body["details"]["fields"]) == {"phone", "email"}


def test_correcting_a_pending_invitation(as_admin, as_coord, as_ada, world):
    pending = world["ada_pending"]
    response = as_ada.request("PATCH", f"/referrals/{pending.id}", json={"name": "Chola M. Mwansa"})
    assert response.status_code == 200 and response.get_json()["prospect_name"] == "Chola M. Mwansa"
    fixed = as_admin.request("PATCH", f"/referrals/{pending.id}", json={"phone": None, "email": "chola@example.org"})
    assert fixed.status_code == 200, fixed.get_json()
    assert (fixed.get_json()["prospect_phone"], fixed.get_json()["prospect_email"]) == (None, "chola@example.org")
    db.session.expire_all()
    assert db.session.get(Referral, pending.id).prospect_email == "chola@example.org"

    assert_error(as_coord.request("PATCH", f"/referrals/{pending.id}", json={"name": "Y"}), 403)
    assert_error(as_coord.request("PATCH", f"/referrals/{world['dora_pending'].id}", json={"name": "Y"}), 404)
    assert_error(as_admin.request("PATCH", f"/referrals/{pending.id}", json={"email": None}), 422, "phone")
    assert_error(as_admin.request("PATCH", f"/referrals/{pending.id}", json={"email": "x"}), 422, "email")
    assert_error(as_admin.request("PATCH", f"/referrals/{pending.id}", json={"name": "Y" * 161}), 422, "name")
    assert_error(as_admin.request("PATCH", f"/referrals/{world['ada_credited'][0].id}", json={"name": "Y"}), 409)


def test_withdrawing_an_open_referral(as_admin, as_coord, as_ada, world):
    registered = world["ada_registered"]
    body = assert_error(as_admin.delete(f"/referrals/{registered.id}"), 422, "reason")  # staff must say why
    assert body["error"] == "Give a reason for withdrawing the referral."
    assert_error(as_coord.delete(f"/referrals/{registered.id}?reason=x"), 403)
    assert_error(as_coord.delete(f"/referrals/{world['dora_pending'].id}?reason=x"), 404)
    assert_error(as_admin.delete(f"/referrals/{registered.id}", json={"reason": "x" * 501}), 422, "reason")
    assert_error(as_admin.delete(f"/referrals/{registered.id}?reason=" + "x" * 301), 422, "reason")

    response = as_admin.delete(f"/referrals/{registered.id}?reason=Entered+twice")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["reason"]) == ("rejected", "Entered twice") and body["closed_at"]
    assert_error(as_admin.delete(f"/referrals/{registered.id}", json={"reason": "again"}), 409)
    # a credited referral is revoked, not withdrawn
    credited = assert_error(as_admin.delete(f"/referrals/{world['ada_credited'][0].id}", json={"reason": "x"}), 409)
    assert "revoke" in credited["error"]
    # the referrer takes back their own pending invitation without a reason
    own = as_ada.delete(f"/referrals/{world['ada_pending'].id}")
    assert own.status_code == 200 and own.get_json()["reason"] == "Withdrawn by the referrer."
    assert_error(as_ada.delete(f"/referrals/{world['dora_pending'].id}"), 403)


def test_revoking_a_credit_reverses_the_points_in_the_ledger(as_admin, as_ada, world):
    ada, credited = world["ada"], world["ada_credited"][0]
    assert ledger_balance(ada) == 20 == listed(as_ada, "/me/referrals")["points"]
    response = as_admin.post(f"/referrals/{credited.id}/revoke", json={"reason": "Paid to join"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["reason"], body["points"]) == ("rejected", "Paid to join", 0)
    db.session.expire_all()
    entries = db.session.scalars(select(PointsEntry).where(PointsEntry.referral_id == credited.id)
                                 .order_by(PointsEntry.id)).all()
    assert [(e.kind, e.points) for e in entries] == [("award", 10), ("reversal", -10)]
    assert ledger_balance(ada) == 10 == referral_service.balance(ada)
    assert listed(as_ada, "/me/referrals")["points"] == 10
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "referral.revoke"))
    # twice, or on a referral that was never credited: a conflict
    assert_error(as_admin.post(f"/referrals/{credited.id}/revoke", json={"reason": "again"}), 409)
    assert_error(as_admin.post(f"/referrals/{world['ada_pending'].id}/revoke", json={"reason": "x"}), 409)
    assert ledger_balance(ada) == 10


@pytest.mark.parametrize(("body", "status"), [
    ({}, 422), ({"reason": ""}, 422), ({"reason": "   "}, 422), ({"reason": "x" * 501}, 422),
    ({"reason": "x" * 100_000}, 422), ({"reason": None}, 400), ({"reason": 5}, 400),
])
def test_revoking_needs_a_reason(as_admin, world, body, status):
    credited = world["ada_credited"][0]
    assert_error(as_admin.post(f"/referrals/{credited.id}/revoke", json=body), status, "reason")
    db.session.expire_all()
    assert db.session.get(Referral, credited.id).status == "credited"


def test_a_coordinator_may_not_revoke_and_sees_nothing_outside_their_ward(as_coord, as_ada, world):
    body = assert_error(as_coord.post(f"/referrals/{world['ada_credited'][0].id}/revoke", json={"reason": "x"}), 403)
    assert body["details"] == {"permission": "referrals.update"}
    assert_error(as_coord.post(f"/referrals/{world['ben_credited'].id}/revoke", json={"reason": "x"}), 404)
    assert_error(as_ada.post(f"/referrals/{world['ada_credited'][0].id}/revoke", json={"reason": "x"}), 403)
    assert ledger_balance(world["ada"]) == 20


# --- codes ------------------------------------------------------------------------------------


def test_a_usable_code_is_valid_and_names_nobody(api, world):
    code = referral_service.code_for(world["ada"])
    db.session.commit()
    typed = f" {code[:3].lower()}-{code[3:]}"
    response = api.get(f"/referrals/code/{typed}")  # no token: the join form asks before anyone signs in
    assert response.status_code == 200
    assert response.get_json() == {"code": code, "valid": True}
    text = response.get_data(as_text=True)
    assert "Ada" not in text and "Banda" not in text and world["ada"].membership_number not in text


def test_unknown_malformed_and_stale_codes_say_which(api, world):
    body = assert_error(api.get("/referrals/code/ZZZZZZ"), 404, "code")
    assert body["error"] == "There is no referral code ZZZZZZ. Check it, or join without one."
    body = assert_error(api.get("/referrals/code/ABC0EF"), 422, "code")
    assert "is not a referral code" in body["error"]
    assert_error(api.get("/referrals/code/" + "A" * 3000), 422, "code")
    assert_error(api.get("/referrals/code/%00"), 422, "code")
    assert_error(api.get("/referrals/code/-"), 422, "code")  # nothing left of it: no code
    dora = world["dora"]
    code = referral_service.code_for(dora)
    member_service.change_status(None, dora, "expelled", "Misconduct")
    body = assert_error(api.get(f"/referrals/code/{code}"), 422, "code")
    assert body["error"] == f"The referral code {code} is no longer valid. You can join without one."
    assert "Dora" not in body["error"]


def test_code_checks_are_rate_limited(api, app, world, monkeypatch):
    monkeypatch.setitem(app.config, "REFERRAL_CODE_RATE_LIMIT", "2 per minute")
    for _ in range(2):
        assert api.get("/referrals/code/ZZZZZZ").status_code == 404
    limited = assert_error(api.get("/referrals/code/ZZZZZZ"), 429)
    assert limited["details"]["limit"] and "Retry-After" in api.client.get("/api/v1/referrals/code/ZZZZZZ").headers


# --- figures -----------------------------------------------------------------------------------


def expected_funnel(referrals: list[Referral]) -> dict:
    recorded = len(referrals)
    registered = sum(1 for r in referrals if r.registered_at is not None)
    credited = sum(1 for r in referrals if r.credited_at is not None)
    by_status = {status: 0 for status in ("pending", "registered", "credited", "expired", "rejected")}
    by_status.update(Counter(r.status for r in referrals))
    return {"recorded": recorded, "registered": registered, "credited": credited,
            "registered_rate": round(registered / recorded, 4) if recorded else None,
            "credited_rate": round(credited / recorded, 4) if recorded else None, "by_status": by_status}


def expected_board(referrals: list[Referral]) -> list[tuple[int, int, int]]:
    """(member id, points, competition rank) of the referrers with points, from the ledger rows."""
    referrers = {r.referrer_id for r in referrals}
    points = {m: ledger_balance(db.session.get(Member, m)) for m in referrers}
    ranked = sorted(((m, p) for m, p in points.items() if p > 0), key=lambda mp: (-mp[1], mp[0]))
    return [(m, p, 1 + sum(1 for _o, q in ranked if q > p)) for m, p in ranked]


def test_the_whole_organisations_figures_equal_a_count_of_the_rows(as_admin, world, tree):
    body = listed(as_admin, "/referrals/stats")
    every = db.session.scalars(select(Referral)).all()
    assert body["unit"] is None
    assert body["funnel"] == expected_funnel(every)
    assert body["funnel"]["recorded"] == 7 and body["funnel"]["credited"] == 4
    board = [(i["member_id"], i["points"], i["rank"]) for i in body["leaderboard"]["items"]]
    assert board == expected_board(every) == [(world["ada"].id, 20, 1), (world["ben"].id, 10, 2),
                                               (world["dora"].id, 10, 2)]
    top = body["leaderboard"]["items"][0]
    assert (top["name"], top["unit_id"], top["unit_name"], top["credited"], top["registered"], top["recorded"]) == (
        "Ada Banda", tree["w1"].id, "Lukashya Ward 1", 2, 3, 4)
    assert body["leaderboard"]["total"] == 3
    # the unit leaderboard defaults to the top level: the provinces
    assert body["level"] == 0 and body["levels"][0] == {"level": 0, "name": "province"}
    provinces = {u["unit_id"]: u for u in body["units"]}
    assert (provinces[tree["p1"].id]["points"], provinces[tree["p1"].id]["recorded"]) == (30, 5)
    assert (provinces[tree["p2"].id]["points"], provinces[tree["p2"].id]["recorded"]) == (10, 2)
    assert [u["rank"] for u in body["units"]] == [1, 2]


def test_the_leaderboard_pages(as_admin, world):
    first = listed(as_admin, "/referrals/stats?limit=1")["leaderboard"]
    second = listed(as_admin, "/referrals/stats?limit=2&offset=1")["leaderboard"]
    assert [i["member_id"] for i in first["items"]] == [world["ada"].id]
    assert [i["member_id"] for i in second["items"]] == [world["ben"].id, world["dora"].id]
    assert (first["total"], second["limit"], second["offset"]) == (3, 2, 1)
    assert listed(as_admin, "/referrals/stats?offset=1000000000")["leaderboard"]["items"] == []


def test_a_units_figures_and_its_unit_leaderboard(as_admin, world, tree):
    body = listed(as_admin, f"/referrals/stats?unit_id={tree['c1'].id}")
    in_c1 = referrals_where({"w1", "w2"}, tree)
    assert body["unit"] == {"id": tree["c1"].id, "name": "Lukashya", "code": "C1"}
    assert body["funnel"] == expected_funnel(in_c1)
    assert [(i["member_id"], i["points"], i["rank"]) for i in body["leaderboard"]["items"]] == expected_board(in_c1)
    assert body["level"] == 3 and body["levels"] == [{"level": 3, "name": "ward"}]
    wards = {u["unit_id"]: (u["points"], u["recorded"], u["registered"], u["credited"], u["recruiters"], u["rank"])
             for u in body["units"]}
    assert wards == {tree["w1"].id: (20, 4, 3, 2, 1, 1), tree["w2"].id: (10, 1, 1, 1, 1, 2)}
    by_district = listed(as_admin, f"/referrals/stats?unit_id={tree['p1'].id}&level=2")
    assert {u["unit_id"]: u["points"] for u in by_district["units"]} == {tree["c1"].id: 30, tree["c2"].id: 0}
    ward = listed(as_admin, f"/referrals/stats?unit_id={tree['w1'].id}")
    assert (ward["level"], ward["levels"], ward["units"]) == (None, [], [])  # nothing below a ward


def test_a_coordinators_figures_cover_only_their_wards(as_coord, world, tree):
    body = listed(as_coord, "/referrals/stats")
    theirs = referrals_where(W1_ONLY, tree)
    assert body["funnel"] == expected_funnel(theirs)
    assert [(i["member_id"], i["points"], i["rank"]) for i in body["leaderboard"]["items"]] == \
        expected_board(theirs) == [(world["ada"].id, 20, 1)]
    assert body["leaderboard"]["total"] == 1
    # the province row is their wards' figures only, and the other province is not listed
    assert [(u["unit_id"], u["points"], u["recorded"]) for u in body["units"]] == [(tree["p1"].id, 20, 4)]
    assert listed(as_coord, f"/referrals/stats?unit_id={tree['w1'].id}")["funnel"] == expected_funnel(theirs)
    assert_error(as_coord.get(f"/referrals/stats?unit_id={tree['w2'].id}"), 404)
    assert_error(as_coord.get(f"/referrals/stats?unit_id={tree['p2'].id}"), 404)


@pytest.mark.parametrize(("query", "status", "field"), [
    ("level=7", 422, "level"), ("level=-1", 422, "level"), ("level=x", 400, "level"), ("level=100", 422, "level"),
    ("limit=0", 422, "limit"), ("limit=201", 422, "limit"), ("offset=-1", 422, "offset"),
    ("offset=99999999999999999999", 422, "offset"), ("unit_id=", 400, "unit_id"),
])
def test_bad_stats_parameters(as_admin, world, query, status, field):
    assert_error(as_admin.get("/referrals/stats?" + query), status, field)


def test_a_level_above_the_unit_is_refused_with_the_levels_allowed(as_admin, world, tree):
    body = assert_error(as_admin.get(f"/referrals/stats?unit_id={tree['c1'].id}&level=1"), 422, "level")
    assert body["details"]["allowed"] == [3]


def test_figures_need_referrals_read(as_member, as_ada, as_admin):
    for client in (as_member, as_ada):
        assert assert_error(client.get("/referrals/stats"), 403)["details"] == {"permission": "referrals.read"}
    assert_error(as_admin.get("/referrals/stats?unit_id=2147483647"), 404)


# --- a member's own ---------------------------------------------------------------------------


def test_my_referrals(app, as_ada, world, tree):
    ada = world["ada"]
    body = listed(as_ada, "/me/referrals")
    code = db.session.get(ReferralCode, ada.id).code  # kept: the next look shows the same code
    assert body["code"] == code and len(code) == 6
    assert body["link"] == f"{app.config['PUBLIC_URL']}/join?ref={code}"
    assert body["points"] == ledger_balance(ada) == 20
    own = db.session.scalars(select(Referral).where(Referral.referrer_id == ada.id)).all()
    assert body["counts"] == {"pending": 1, "registered": 1, "credited": 2, "expired": 0, "rejected": 0}
    assert body["counts"] == {s: sum(1 for r in own if r.status == s) for s in body["counts"]}
    assert body["total"] == 4 and {i["id"] for i in body["items"]} == {r.id for r in own}
    assert {i["id"]: i["status_label"] for i in body["items"]}[world["ada_pending"].id] == "Invited"

    def active_in(unit_ids):
        return db.session.query(Member).filter(Member.unit_id.in_(unit_ids), Member.status == "active",
                                               Member.deleted_at.is_(None)).count()

    ward, constituency = body["ranks"]
    assert ward == {"unit": {"id": tree["w1"].id, "name": "Lukashya Ward 1", "level": "ward"}, "rank": 1,
                    "of": active_in([tree["w1"].id])}
    assert constituency["unit"]["level"] == "constituency" and constituency["rank"] == 1
    assert constituency["of"] == active_in([tree["w1"].id, tree["w2"].id])
    assert listed(as_ada, "/me/referrals")["code"] == code
    paged = listed(as_ada, "/me/referrals?per_page=1&page=2")
    assert len(paged["items"]) == 1 and paged["links"]["prev"] == "/api/v1/me/referrals?page=1&per_page=1"
    assert listed(as_ada, "/me/referrals?page=99999999999999999999")["items"] == []


def test_my_referrals_without_points_or_an_active_membership(api, world, make_member, make_user, tree):
    newcomer = make_member(tree["w2"], status="pending")
    make_user("new@test.org", "member", member=newcomer)
    body = listed(api.login("new@test.org"), "/me/referrals")
    assert (body["code"], body["link"], body["points"], body["total"]) == (None, None, 0, 0)
    assert [r["rank"] for r in body["ranks"]] == [None, None]


def test_my_referrals_needs_a_member_record(as_member, as_admin, api):
    assert_error(as_member.get("/me/referrals"), 404)
    assert_error(as_admin.get("/me/referrals"), 404)
    assert_error(api.get("/me/referrals"), 401)
