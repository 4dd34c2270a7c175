"""The matrix's world: the principals of ``rules.PRINCIPALS`` and, for each side, one object of every kind.

Principals with a member record of their own (``member_of``) have a card and
are registered for their ward's event (the ``in`` side's), so the
self-service rows (``/me/card``, cancelling one's registration) have
something of theirs to act on.

Sides: ``in`` lies in ward W1 (the coordinators' ward), ``near`` in ward W2
(same province P1, another ward), ``out`` in ward W4 (province P2). Jobs and
uploads are made per test (``calls.add_jobs``/``add_uploads``): the
principal's own (``in``) and another user's (``out``).

The world is built and committed once for the package (some thousand
requests run against it) and wiped afterwards; each test still runs in the
rolled-back outer transaction of tests/conftest.py, so what one test changes
(a deleted member, a revoked card) is gone for the next.
"""

from __future__ import annotations

import copy
import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, ErasureRequest, ImportUpload, MemberChangeRequest, Unit, User
from app.models.base import utcnow
from app.services import cards as card_service
from app.services import events as event_service
from app.services import auth, geo, rbac
from app.services import mail as mail_service
from app.services import members as member_service
from app.services import referrals as referral_service
from app.services import storage
from app.services.auth import hash_password
from tests.conftest import PASSWORD, wipe_tables
from tests.permission_matrix.calls import CSV, PDF
from tests.permission_matrix.routes import Upload
from tests.permission_matrix.rules import PRINCIPALS, READER_ROLE, SIDE_UNITS, UNITS, WARD_SIDES


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), "blue").save(out, "PNG")
    return out.getvalue()


class _Builder:
    """Makes the world's rows with the services, as the system (actor None)."""

    def __init__(self) -> None:
        self.n = 0
        self.password_hash = hash_password(PASSWORD)
        self.units: dict[str, Unit] = {}
        for key, (name, parent) in UNITS.items():  # parents come first in UNITS
            self.units[key] = geo.create_unit(None, name, key.upper(), self.units[parent] if parent else None)

    def member(self, unit: str):
        self.n += 1
        return member_service.create_member(None, {"first_name": f"First{self.n}", "last_name": f"Last{self.n}",
                                                   "unit_id": self.units[unit].id, "status": "active"})

    def user(self, email: str, roles, member_of: str | None = None) -> User:
        user = User(email=email, password_hash=self.password_hash,
                    member=self.member(member_of) if member_of else None)
        db.session.add(user)
        db.session.flush()
        for role, unit in roles:
            rbac.assign_role(None, user, rbac.role_by_name(role), self.units[unit] if unit else None)
        return user


def _requests(member) -> dict[str, int]:
    """A pending change request (first name) and erasure request of ``member``, as the portal makes them."""
    change = MemberChangeRequest(member=member, fields={"first_name": "Changed"},
                                 old_values={"first_name": member.first_name}, status="pending")
    erasure = ErasureRequest(member=member, status="pending")
    db.session.add_all([change, erasure])
    db.session.flush()
    return {"change_request": change.id, "erasure_request": erasure.id}


# Phone numbers per side: of the pending invitation in the world ({referral}) and of the one a row records.
REFERRAL_PHONES = {"in": ("+260971200001", "+260971300001"), "near": ("+260971200002", "+260971300002"),
                   "out": ("+260971200003", "+260971300003")}


def _referrals(make: _Builder, member, side: str) -> dict[str, Any]:
    """Referrals of the side's member (so they live in the side's ward), made as joining and approval make them.

    ``{referral}``: a pending invitation (it can be read, corrected and withdrawn); ``{credited_referral}``:
    someone who joined with the member's code and was approved, so the member earned points (it can be
    revoked); ``{referral_code}``: the member's code; ``{invite_phone}``: a number nobody was invited with yet.
    """
    code = referral_service.code_for(member)
    invited, fresh = REFERRAL_PHONES[side]
    pending = referral_service.record_prospect(member, f"Prospect {side}", invited, None)
    make.n += 1
    newcomer = member_service.create_member(None, {"first_name": f"First{make.n}", "last_name": f"Last{make.n}",
                                                   "unit_id": member.unit_id, "status": "pending"})
    credited = referral_service.record_join(newcomer, code)
    member_service.change_status(None, newcomer, "active", "Approved")
    return {"referral": pending.id, "credited_referral": credited.id, "referral_code": code, "invite_phone": fresh}


def _build() -> dict[str, Any]:
    rbac.create_role(None, READER_ROLE[0], "Reads across an area", READER_ROLE[1])
    make = _Builder()
    own_members = []  # the principals' own member records: each gets a card (self-service rows read it)
    tokens: dict[str, str] = {}  # an API token per principal, issued once (a test's requests may revoke it)
    for name, principal in PRINCIPALS.items():
        if principal.email is not None:
            user = make.user(principal.email, principal.roles, principal.member_of)
            tokens[name] = auth.issue_token(user, "matrix")[0]
            if user.member is not None:
                card_service.issue_card(None, user.member)
                own_members.append(user.member)
    photo = _photo()
    roles = {name: rbac.role_by_name(name).id for name in ("member", "ward_coordinator")}
    matrix_role = rbac.create_role(None, "matrix_role", "", ["members.read"])
    from app.services import dues  # dues (issue 14): one tier for every side
    from app.services.dues import tiers

    tier = tiers.create_tier(None, {"name": "Matrix tier", "price": "10", "currency": "ZMW", "duration_months": "12"})
    sides: dict[str, dict[str, Any]] = {}
    for side, ward_key in WARD_SIDES.items():
        ward = make.units[ward_key]
        member = make.member(ward_key)
        member_service.set_photo(None, member, photo)
        deleted = make.member(ward_key)
        member_service.delete_member(None, deleted)
        user = make.user(f"{side}@test.org", [("ward_coordinator", ward_key)])
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.object_id == str(member.id),
                                                           AuditEntry.object_type == "Member"))
        # A published event open for check-in, the side's member registered, an agenda attached.
        event = event_service.create_event(None, {
            "title": f"Matrix event {side}", "start_at": utcnow() - timedelta(hours=1),
            "end_at": utcnow() + timedelta(hours=3), "unit_id": ward.id, "status": "upcoming"})
        event_service.register(None, event, member)
        for own in own_members:  # principals are registered where they may be (their ward's event)
            if own.unit_id == ward.id:
                event_service.register(None, event, own)
        agenda = event_service.add_attachment(None, event, "agenda.pdf", PDF)
        card = card_service.issue_card(None, member)
        # A failed message about the side's member (so Retry has something to do).
        message = mail_service.send_mail("test", f"{side}@example.org", {"sent_at": "matrix"}, member=member)
        message.status, message.reason = "failed", "550 matrix"
        sides[side] = {
            "tag": side.upper(), "member": member.id, "deleted_member": deleted.id,
            "unit": ward.id, "unit_parent": ward.parent_id, "unit_name": ward.name, "unit_code": ward.code,
            "branch": make.units[SIDE_UNITS["branch"][side]].id,
            "empty_unit": make.units[SIDE_UNITS["empty_unit"][side]].id,
            "user": user.id, "assignment": user.assignments[0].id, "entry": entry.id,
            "event": event.id, "attachment": agenda.id, "card": card.id, "cardless": make.member(ward_key).id,
            # A pending member of the side's ward, for the approval rows (issue 11).
            "pending": member_service.create_member(None, {"first_name": "Pending", "last_name": side.title(),
                                                           "unit_id": ward.id, "status": "pending"}).id,
            "mail": message.id,
            # A pending change request and erasure request of the side's member (issue 11: the profile).
            **_requests(member),
            # Referrals of the side's member (issue 13): {referral}, {credited_referral}, {referral_code}.
            **_referrals(make, member, side),
            "tier": tier.id, "member_number": member.membership_number,
            # A receipted cash payment of the side's member (issue 14).
            "payment": dues.record_manual(None, member, {"tier_id": tier.id, "method": "cash"}).id,
            "role": matrix_role.id, "member_role": roles["member"], "coord_role": roles["ward_coordinator"],
            "csv_file": Upload("members.csv", CSV.read_bytes()), "pdf_file": Upload("minutes.pdf", PDF),
        }
    return {"sides": sides, "units": {key: unit.id for key, unit in make.units.items()}, "tokens": tokens}


@pytest.fixture(scope="package")
def _committed_world(app):
    """The world, committed once for every test of the package; wiped when the package is done."""
    with app.app_context():
        built = _build()
        db.session.commit()
        db.session.remove()
        yield built
        wipe_tables()


@pytest.fixture()
def world(_committed_world):
    """{side: {placeholder: value}} for the in, near and out sides (a copy each test may extend)."""
    return copy.deepcopy(_committed_world["sides"])


@pytest.fixture()
def tokens(_committed_world) -> dict[str, str]:
    """{principal: API bearer token}, issued when the world was built (the token request has its own tests)."""
    return _committed_world["tokens"]


@pytest.fixture()
def units(_committed_world) -> dict[str, Unit]:
    """The world's units by key (p1, w1, ...), loaded in the test's transaction."""
    return {key: db.session.get(Unit, unit_id) for key, unit_id in _committed_world["units"].items()}


@pytest.fixture(autouse=True)
def _remove_upload_files(app):
    """Uploaded files live under the instance folder, outside the rolled-back transaction."""
    yield
    for upload in db.session.scalars(select(ImportUpload)):
        if upload.stored_name:
            storage.delete(upload.stored_name)
