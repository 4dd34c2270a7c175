"""Demo data: a small but realistic organisation to explore the app with.

Idempotent: each part is created only when missing, so running it again (as
`make run` does on every start) never duplicates anything.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Member, Unit, User
from app.services import geo, members, rbac
from app.services.auth import hash_password

DEMO_PASSWORD = "demo-password"

PROVINCES = {
    "Northern": {"Kasama": ["Lukashya", "Malole"], "Mbala": ["Mbala Central", "Lunte"]},
    "Lakeside": {"Mansa": ["Bahati", "Mansa Central"], "Samfya": ["Bangweulu", "Chifunabuli"]},
    "Highlands": {"Chipata": ["Chipata Central", "Luangeni"], "Petauke": ["Kapoche", "Msanzala"]},
}
FIRST_NAMES = [
    "Mwila", "Chanda", "Bwalya", "Mutale", "Natasha", "Grace", "Joseph", "Mary", "Peter", "Esther",
    "Kelvin", "Ruth", "Brian", "Agnes", "Moses", "Beatrice", "Daniel", "Precious", "Emmanuel", "Memory",
    "Lombe", "Chileshe", "Mapalo", "Thandiwe", "Kondwani", "Lubinda", "Namakau", "Mwansa", "Chipo", "Taonga",
    "Zoë", "José", "Ana", "Samuel", "Faith", "Gift", "Joyce", "Charles", "Martha", "Patrick",
]
LAST_NAMES = [
    "Banda", "Phiri", "Mwanza", "Tembo", "Zulu", "Mulenga", "Bwalya", "Chanda", "Mumba", "Sakala",
    "Lungu", "Daka", "Ngoma", "Musonda", "Kapembwa", "Chisenga", "Kabwe", "Mwale", "Nyirenda", "Simwanza",
    "Hamoonga", "Mubanga", "Kalaba", "Siame", "Nkhata", "Mbewe", "Chilufya", "Kunda", "Sichone", "Mutati",
]
STATUS_WEIGHTS = {"active": 70, "pending": 10, "lapsed": 8, "suspended": 4, "resigned": 5, "deceased": 2, "expelled": 1}


def _tree() -> list[Unit]:
    """Create the demo geography if the tree is empty; return its wards."""
    if db.session.scalar(select(func.count()).select_from(Unit)) == 0:
        for p_index, (province, districts) in enumerate(PROVINCES.items(), start=1):
            p = geo.create_unit(None, province, f"P{p_index}")
            for d_index, (district, constituencies) in enumerate(districts.items(), start=1):
                d = geo.create_unit(None, district, f"{p.code}-D{d_index}", p)
                for c_index, constituency in enumerate(constituencies, start=1):
                    c = geo.create_unit(None, constituency, f"{d.code}-C{c_index}", d)
                    for w_index in range(1, 4):
                        geo.create_unit(None, f"{constituency} Ward {w_index}", f"{c.code}-W{w_index}", c)
    last_level = db.session.scalar(select(func.max(Unit.level)))
    return list(db.session.scalars(select(Unit).where(Unit.level == last_level).order_by(Unit.code)))


def _members(wards: list[Unit], count: int, rng: random.Random) -> None:
    if count < 1 or db.session.scalar(select(func.count()).select_from(Member)):
        return
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    numbers = members.next_membership_numbers(count)
    used_phones: set[str] = set()
    today = date.today()
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        while True:
            phone = f"+26097{rng.randrange(1000000, 9999999)}"
            if phone not in used_phones:
                used_phones.add(phone)
                break
        member = Member(
            membership_number=numbers[i],
            first_name=first,
            last_name=last,
            surname_key=members.fold(last),
            gender=rng.choice(["female", "male"]),
            date_of_birth=today - timedelta(days=rng.randrange(18 * 365, 80 * 365)),
            national_id=f"{rng.randrange(100000, 999999)}/{rng.randrange(10, 99)}/{i % 10}" if rng.random() < 0.8 else None,
            phone=phone,
            email=f"{first.lower()}.{last.lower()}.{i}@example.org".replace("ë", "e").replace("é", "e") if rng.random() < 0.5 else None,
            unit_id=rng.choice(wards).id,
            status=rng.choices(statuses, weights)[0],
            joined_on=today - timedelta(days=rng.randrange(0, 5 * 365)),
        )
        db.session.add(member)
    db.session.flush()


def _user(email: str, role: str, unit: Unit | None = None, member: Member | None = None) -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, password_hash=hash_password(DEMO_PASSWORD), member=member)
        db.session.add(user)
        db.session.flush()
        rbac.assign_role(None, user, rbac.role_by_name(role), unit)
    return user


def seed_demo(member_count: int = 2000, seed: int = 20261120) -> dict:
    """Create the demo organisation; returns what a person needs to log in."""
    rng = random.Random(seed)
    rbac.ensure_catalogue()
    wards = _tree()
    _members(wards, member_count, rng)
    coordinator_ward = wards[0]
    _user("superadmin@demo.test", "super_admin")
    _user("admin@demo.test", "admin")
    _user("coordinator@demo.test", "ward_coordinator", coordinator_ward)
    portal_member = db.session.scalar(
        select(Member).where(Member.unit_id == coordinator_ward.id, Member.status == "active").order_by(Member.id)
    )
    if db.session.scalar(select(User).where(User.email == "member@demo.test")) is None and portal_member is not None:
        if db.session.scalar(select(User).where(User.member_id == portal_member.id)) is None:
            _user("member@demo.test", "member", None, portal_member)
    db.session.flush()
    return {
        "password": DEMO_PASSWORD,
        "logins": ["superadmin@demo.test", "admin@demo.test", "coordinator@demo.test", "member@demo.test"],
        "coordinator_ward": f"{coordinator_ward.name} ({coordinator_ward.code})",
        "members": db.session.scalar(select(func.count()).select_from(Member)),
    }
