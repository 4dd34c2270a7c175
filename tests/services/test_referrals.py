"""The referral core (app/services/referrals.py): codes, every status transition, the gaming guards, the ledger.

Statuses: pending (prospect recorded) -> registered (joined) -> credited
(active: points awarded) ; pending -> expired (sweep) ; pending/registered
-> rejected (join rejected, another referral first) ; credited -> rejected
(credit reversed: a reversal entry, the balance stays the ledger's sum).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuditEntry, Member, PointsEntry, Referral, ReferralCode
from app.models.referrals import CODE_ALPHABET, CODE_LENGTH
from app.services import referrals as ref
from app.services.errors import (
    DuplicateError,
    Forbidden,
    NotFound,
    ServiceError,
    ValidationErrors,
)

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture()
def people(tree, make_member):
    """An active referrer in W1, and a newcomer (pending, as after the join form) in W1."""
    referrer = make_member(tree["w1"], first_name="Ada", last_name="Banda", phone="+260971000001",
                           email="ada@example.org", national_id="100001/11/1")
    newcomer = make_member(tree["w1"], first_name="Ben", last_name="Mwale", phone="+260971000002",
                           email="ben@example.org", national_id="100002/11/1", status="pending")
    return referrer, newcomer


def ledger_sum(member: Member) -> int:
    return sum(db.session.scalars(select(PointsEntry.points).where(PointsEntry.member_id == member.id)))


def activate(member: Member) -> None:
    member.status = "active"
    db.session.flush()


# --- codes ----------------------------------------------------------------------------------


def test_the_code_alphabet_has_no_ambiguous_characters():
    assert not set("0O1IL") & set(CODE_ALPHABET)
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) == 31


def test_a_code_is_created_once_short_and_from_the_alphabet(people):
    referrer, _ = people
    code = ref.code_for(referrer)
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    assert ref.code_for(referrer) == code
    assert db.session.scalar(select(func.count()).select_from(ReferralCode)) == 1


def test_codes_are_unique_and_a_collision_only_retries(people, monkeypatch):
    referrer, newcomer = people
    taken = ref.code_for(referrer)
    draws = iter([taken, taken, "ABCDEF"])
    monkeypatch.setattr(ref, "_new_code", lambda: next(draws))
    assert ref.code_for(newcomer) == "ABCDEF"
    codes = db.session.scalars(select(ReferralCode.code)).all()
    assert sorted(codes) == sorted([taken, "ABCDEF"])


def test_a_collision_at_insert_time_retries_inside_a_savepoint(people, monkeypatch):
    """The existence check misses a code taken meanwhile: the unique index refuses it and the next draw is used."""
    referrer, newcomer = people
    taken = ref.code_for(referrer)
    draws = iter([taken, "HJKMNP"])
    monkeypatch.setattr(ref, "_new_code", lambda: next(draws))
    real_scalar, blinded = db.session.scalar, []

    def blind_precheck(stmt, *args, **kwargs):
        if str(stmt).startswith("SELECT referral_codes.member_id \nFROM referral_codes \nWHERE referral_codes.code"):
            blinded.append(stmt)
            return None
        return real_scalar(stmt, *args, **kwargs)

    monkeypatch.setattr(db.session, "scalar", blind_precheck)
    assert ref.code_for(newcomer) == "HJKMNP"
    assert len(blinded) == 2  # both draws skipped the check: the first was refused by the unique index
    monkeypatch.undo()
    assert db.session.get(ReferralCode, referrer.id).code == taken  # the caller's work survived


@pytest.mark.parametrize("typed", ["abcdef", " AbC-dEf ", "abc def", "ABC.DEF"])
def test_codes_are_case_insensitive_and_forgive_separators(people, typed):
    referrer, _ = people
    db.session.add(ReferralCode(member_id=referrer.id, code="ABCDEF"))
    db.session.flush()
    assert ref.normalise_code(typed) == "ABCDEF"
    assert ref.find_by_code(typed) == referrer


@pytest.mark.parametrize("typed", ["ABCDE0", "abcdeo", "ABCDE1", "abcdei", "abcdel", "ABC", "ABCDEFG", "ABC$EF"])
def test_malformed_codes_are_refused_with_a_message(typed):
    with pytest.raises(ServiceError) as caught:
        ref.normalise_code(typed)
    assert "is not a referral code" in caught.value.message and caught.value.field == "referral_code"


def test_empty_codes_are_no_code():
    assert ref.normalise_code(None) is None and ref.normalise_code("  - ") is None
    assert ref.find_by_code("") is None


def test_unknown_and_expired_codes_say_which(people):
    referrer, newcomer = people
    with pytest.raises(ServiceError, match="There is no referral code ZZZZZZ"):
        ref.record_join(newcomer, "zzzzzz")
    code = ref.code_for(referrer)
    referrer.status = "expelled"
    db.session.flush()
    with pytest.raises(ServiceError, match=f"The referral code {code} is no longer valid"):
        ref.record_join(newcomer, code)
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0  # nothing written


# --- transitions ----------------------------------------------------------------------------


def test_join_with_a_code_registers_then_activation_credits(people, app):
    referrer, newcomer = people
    referral = ref.record_join(newcomer, ref.code_for(referrer).lower(), source="link", now=NOW)
    assert (referral.status, referral.source, referral.referrer, referral.referred_member) == (
        "registered", "link", referrer, newcomer)
    assert referral.registered_at == NOW and ref.balance(referrer) == 0  # joining alone earns nothing

    assert ref.on_member_activated(newcomer) is None  # still pending: no credit
    activate(newcomer)
    assert ref.on_member_activated(newcomer) is referral
    assert referral.status == "credited" and referral.credited_at is not None
    assert ref.balance(referrer) == app.config["REFERRAL_POINTS"] == 10
    assert ref.on_member_activated(newcomer) is referral  # idempotent: no second award
    assert ref.balance(referrer) == 10 == ledger_sum(referrer)


def test_the_points_come_from_the_configuration(people, app, monkeypatch):
    monkeypatch.setitem(app.config, "REFERRAL_POINTS", 25)
    referrer, newcomer = people
    ref.record_join(newcomer, ref.code_for(referrer))
    activate(newcomer)
    ref.on_member_activated(newcomer)
    assert ref.balance(referrer) == 25


def test_a_prospect_is_pending_then_registered_when_they_join(people, tree, make_member):
    referrer, _ = people
    prospect = ref.record_prospect(referrer, " Chola Zulu ", "0971000003", None, now=NOW)
    assert (prospect.status, prospect.source, prospect.prospect_phone) == ("pending", "prospect", "+260971000003")
    joined = make_member(tree["w2"], first_name="Chola", last_name="Zulu", phone="+260971000003", status="pending")
    assert ref.record_join(joined, None) is prospect
    assert prospect.status == "registered" and prospect.referred_member == joined
    activate(joined)
    ref.on_member_activated(joined)
    assert prospect.status == "credited" and ref.balance(referrer) == 10


def test_a_rejected_join_rejects_the_referral_and_awards_nothing(people):
    referrer, newcomer = people
    referral = ref.record_join(newcomer, ref.code_for(referrer))
    assert ref.on_member_rejected(newcomer, "Not resident in the ward.") is referral
    assert (referral.status, referral.reason) == ("rejected", "Not resident in the ward.")
    activate(newcomer)
    assert ref.on_member_activated(newcomer) is None and ref.balance(referrer) == 0
    assert ref.on_member_rejected(newcomer) is None  # closed: nothing more happens


def test_staff_reverse_a_credit_with_a_reason_and_the_balance_stays_the_ledger_sum(people, tree, make_member, staff):
    referrer, newcomer = people
    second = make_member(tree["w1"], phone="+260971000004", status="pending")
    referrals = [ref.record_join(m, ref.code_for(referrer)) for m in (newcomer, second)]
    for m in (newcomer, second):
        activate(m)
        ref.on_member_activated(m)
    assert ref.balance(referrer) == 20 == ledger_sum(referrer)

    with pytest.raises(ServiceError, match="Give a reason"):
        ref.reverse_credit(staff["admin"], referrals[0], "  ")
    entry = ref.reverse_credit(staff["admin"], referrals[0], "Paid to join by the referrer.")
    assert (entry.points, entry.kind, entry.actor) == (-10, "reversal", staff["admin"])
    assert referrals[0].status == "rejected" and referrals[0].reason == "Paid to join by the referrer."
    assert ref.balance(referrer) == 10 == ledger_sum(referrer)
    kinds = db.session.scalars(select(PointsEntry.kind).where(PointsEntry.referral_id == referrals[0].id)
                               .order_by(PointsEntry.id)).all()
    assert kinds == ["award", "reversal"]  # the award is kept, cancelled by the reversal
    assert db.session.scalar(select(AuditEntry.summary).where(AuditEntry.action == "referral.revoke")) == (
        "Credit reversed: Paid to join by the referrer.")
    with pytest.raises(ServiceError, match="Only a credited referral"):
        ref.reverse_credit(staff["admin"], referrals[0], "Again.")
    assert ref.balance(referrer) == 10 == ledger_sum(referrer)


def test_a_coordinator_elsewhere_cannot_reverse_and_a_member_is_refused(people, staff, make_user, tree):
    referrer, newcomer = people
    referral = ref.record_join(newcomer, ref.code_for(referrer))
    activate(newcomer)
    ref.on_member_activated(newcomer)
    elsewhere = make_user("w4@test.org", "ward_coordinator", tree["w4"])
    with pytest.raises(NotFound):
        ref.reverse_credit(elsewhere, referral, "No.")
    with pytest.raises(Forbidden):
        ref.reverse_credit(staff["coordinator"], referral, "No.")  # W1, but referrals.read only
    assert referral.status == "credited" and ref.balance(referrer) == 10


def test_expulsion_reverses_the_credit(people):
    referrer, newcomer = people
    referral = ref.record_join(newcomer, ref.code_for(referrer))
    activate(newcomer)
    ref.on_member_activated(newcomer)
    newcomer.status = "expelled"
    entry = ref.on_member_expelled(newcomer)
    assert entry.points == -10 and entry.actor_id is None
    assert referral.status == "rejected" and "expelled" in referral.reason
    assert ref.balance(referrer) == 0 == ledger_sum(referrer)
    assert ref.on_member_expelled(newcomer) is None  # nothing left to reverse


def test_a_duplicate_found_later_is_reversed_by_the_system(people):
    referrer, newcomer = people
    referral = ref.record_join(newcomer, ref.code_for(referrer))
    activate(newcomer)
    ref.on_member_activated(newcomer)
    ref.reverse_credit(None, referral, "Duplicate of member M0000001.")
    assert referral.status == "rejected" and ref.balance(referrer) == 0 == ledger_sum(referrer)
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "referral.revoke")) == 0  # no staff action to audit


# --- gaming guards --------------------------------------------------------------------------


def test_no_self_referral_by_the_same_member(people):
    referrer, _ = people
    with pytest.raises(ServiceError, match="You cannot refer yourself"):
        ref.record_join(referrer, ref.code_for(referrer))


@pytest.mark.parametrize("field,value,words", [
    ("phone", "+260971000001", "phone number"),
    ("email", "ada@example.org", "email address"),
])
def test_no_self_referral_through_a_second_record(people, field, value, words):
    """A second record sharing the referrer's national ID, phone or email is the same person."""
    referrer, newcomer = people
    code = ref.code_for(referrer)
    setattr(newcomer, field, value)  # (as if the duplicate check had been bypassed)
    with pytest.raises(ServiceError, match=f"You cannot refer yourself: the {words} is the referrer's"):
        ref.record_join(newcomer, code)
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_no_self_referral_by_national_id(people):
    """members.national_id is unique, so only a record not yet saved (an application) can share it: still refused."""
    referrer, _ = people
    assert ref._same_person(referrer, national_id="100001/11/1") == (
        "You cannot refer yourself: the national ID is the referrer's.")
    assert ref._same_person(referrer, national_id="100002/11/1") is None


def test_no_self_referral_as_a_prospect(people):
    referrer, _ = people
    with pytest.raises(ServiceError, match="the phone number is the referrer's"):
        ref.record_prospect(referrer, "Me Again", "0971000001", None)
    with pytest.raises(ServiceError, match="the email address is the referrer's"):
        ref.record_prospect(referrer, "Me Again", None, "ADA@example.org")


def test_one_referrer_per_new_member_the_first_wins(people, tree, make_member):
    referrer, newcomer = people
    other = make_member(tree["w2"], phone="+260971000009")
    first = ref.record_join(newcomer, ref.code_for(referrer))
    assert ref.record_join(newcomer, ref.code_for(referrer)) is first  # a retry: the same referral
    with pytest.raises(DuplicateError, match="already referred by someone else"):
        ref.record_join(newcomer, ref.code_for(other))
    assert db.session.scalars(select(Referral.referrer_id)).all() == [referrer.id]


def test_the_database_refuses_a_second_referrer(people, tree, make_member):
    referrer, newcomer = people
    other = make_member(tree["w2"], phone="+260971000009")
    ref.record_join(newcomer, ref.code_for(referrer))
    db.session.add(Referral(referrer_id=other.id, referred_member_id=newcomer.id, source="code", status="registered"))
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.flush()


def test_an_earlier_prospect_wins_over_a_later_code(people, tree, make_member):
    """A recorded A's prospect first; they then join with B's code: A's referral counts, B sees why not."""
    a, _ = people
    b = make_member(tree["w2"], phone="+260971000009")
    c = make_member(tree["w3"], phone="+260971000010")
    by_a = ref.record_prospect(a, "Dora Phiri", None, "dora@example.org", now=NOW)
    # C invited her too, by phone, later: the first (A's) wins, C's is rejected.
    by_c = ref.record_prospect(c, "Dora Phiri", "0971000011", None, now=NOW + timedelta(days=1))
    dora = make_member(tree["w1"], first_name="Dora", last_name="Phiri", email="dora@example.org",
                       phone="+260971000011", status="pending")
    winner = ref.record_join(dora, ref.code_for(b))
    assert winner is by_a and by_a.status == "registered"
    assert by_c.status == "rejected" and "another member's referral" in by_c.reason
    lost = db.session.scalar(select(Referral).where(Referral.referrer_id == b.id))
    assert (lost.status, lost.referred_member_id, lost.code) == ("rejected", None, ref.code_for(b))


def test_duplicate_prospects_are_rejected(people, tree, make_member):
    referrer, newcomer = people
    other = make_member(tree["w2"], phone="+260971000009")
    ref.record_prospect(referrer, "Eli Tembo", "0971000020", "eli@example.org")
    with pytest.raises(DuplicateError, match="You have already recorded this person"):
        ref.record_prospect(referrer, "Eli T.", "0971000020", None)
    with pytest.raises(DuplicateError, match="Another member has already invited this person"):
        ref.record_prospect(other, "Eli", None, "ELI@example.org")
    with pytest.raises(DuplicateError, match="already registered"):
        ref.record_prospect(referrer, "Ben", None, newcomer.email)  # already a member
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 1


def test_prospect_input_errors_are_reported_at_once(people):
    referrer, _ = people
    with pytest.raises(ValidationErrors) as caught:
        ref.record_prospect(referrer, "", "12", "not-an-email")
    assert set(caught.value.errors) == {"name", "phone", "email"}
    with pytest.raises(ValidationErrors) as caught:
        ref.record_prospect(referrer, "Fay", "", None)
    assert caught.value.errors == {"phone": "Enter a phone number or an email address."}


def test_only_active_members_recruit(people):
    _, newcomer = people
    with pytest.raises(ServiceError, match="Only active members"):
        ref.record_prospect(newcomer, "Gus", "0971000030", None)  # newcomer is still pending


# --- the expiry sweep -----------------------------------------------------------------------


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args) -> None:
        self.count += 1

    def __enter__(self):
        sa_event.listen(db.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc) -> None:
        sa_event.remove(db.engine, "before_cursor_execute", self)


def test_the_sweep_expires_only_old_pending_referrals_and_is_idempotent(people, app):
    referrer, newcomer = people
    assert app.config["REFERRAL_EXPIRY_DAYS"] == 60
    old = ref.record_prospect(referrer, "Old", "0971000040", None, now=NOW - timedelta(days=61))
    fresh = ref.record_prospect(referrer, "Fresh", "0971000041", None, now=NOW - timedelta(days=59))
    joined = ref.record_join(newcomer, ref.code_for(referrer), now=NOW - timedelta(days=90))
    assert ref.expire_sweep(NOW) == {"referrals_expired": 1}
    assert (old.status, fresh.status, joined.status) == ("expired", "pending", "registered")
    assert old.closed_at == NOW and "60 days" in old.reason
    assert ref.expire_sweep(NOW) == {"referrals_expired": 0}
    assert ref.expire_sweep(NOW + timedelta(days=2)) == {"referrals_expired": 1}
    assert fresh.status == "expired"


def test_an_expired_prospect_no_longer_counts_when_they_join(people, tree, make_member):
    referrer, _ = people
    old = ref.record_prospect(referrer, "Hope", "0971000050", None, now=NOW - timedelta(days=61))
    ref.expire_sweep(NOW)
    hope = make_member(tree["w1"], phone="+260971000050", status="pending")
    assert ref.record_join(hope, None) is None and old.status == "expired"


def test_the_sweep_is_set_based(people, app):
    """The statements of a sweep do not grow with the rows due (10 vs 500)."""
    referrer, _ = people
    counts = []
    for n in (10, 500):
        db.session.execute(insert(Referral), [
            {"referrer_id": referrer.id, "prospect_name": f"P{i}", "prospect_phone": f"+26097{n:03d}{i:04d}",
             "source": "prospect", "status": "pending", "reason": "", "created_at": NOW - timedelta(days=100),
             "updated_at": NOW} for i in range(n)])
        with StatementCounter() as counter:
            assert ref.expire_sweep(NOW) == {"referrals_expired": n}
        counts.append(counter.count)
    assert counts[0] == counts[1] <= 2
