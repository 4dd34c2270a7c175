"""Demo data: a small but realistic organisation to explore the app with.

Geography, members, the demo logins, events (past ones with registrations and
door check-ins, upcoming ones with registrations, some full with a waiting
list), cards for most active members, and referrals with their points.

Idempotent: each part is created only when its table is empty (units,
members, events, cards; logins by email), so running it again (as
`make run` does on every start) never duplicates anything. Events and cards
go through the same services as the console, with the system as the actor
(``None``), and in bulk where the services allow it (``cards.issue_cards``
allocates every number in one block; one ``mark_no_shows`` call for all
finished events). Each part draws from its own seeded random generator, so
what it creates does not depend on which parts already existed.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, Member, MembershipCard, Referral, Unit, User
from app.models.base import utcnow
from app.services import cards, events, geo, members, rbac
from app.services.auth import hash_password
from app.services.errors import ServiceError

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


# --- events ------------------------------------------------------------------------------
# (title, type, days from today (negative: past), capacity, registrations wanted, share who came).
# Provinces hold both of theirs; constituencies and the sampled wards one each, past and upcoming
# in turn; the coordinator's ward (where member@demo.test lives) both of the ward's.
PROVINCE_EVENTS = [
    ("{name} provincial rally", "rally", -24, None, 30, 0.75),  # walk-ins admitted too
    ("{name} provincial conference", "meeting", 18, 24, 28, 0),  # full: a waiting list of four
]
CONSTITUENCY_EVENTS = [
    ("{name} constituency meeting", "meeting", -10, None, 14, 0.7),
    ("{name} organisers' training", "training", 9, 20, 10, 0),
]
WARD_EVENTS = [
    ("{name} monthly meeting", "meeting", -6, None, 8, 0.8),
    ("{name} community clean-up", "social", 5, 6, 8, 0),  # full: a waiting list of two
]
VENUES = ["Civic centre", "Community hall", "Primary school", "Church hall", "Market square", "Youth centre"]


def _event(unit: Unit, plan: tuple, start: datetime, rng: random.Random) -> tuple[Event, int, float]:
    title, kind, _days, capacity, wanted, came = plan
    event = events.create_event(None, {
        "title": title.format(name=unit.name), "event_type": kind, "unit_id": unit.id,
        "start_at": start, "end_at": start + timedelta(hours=3), "capacity": capacity,
        "venue": rng.choice(VENUES), "location": unit.name, "status": "upcoming",
        "walk_ins_allowed": kind == "rally",
        "description": f"Open to members of {unit.name} and the units below it.",
    })
    return event, wanted, came


def _events(wards: list[Unit], portal_member: Member | None, rng: random.Random) -> None:
    """Published events at three levels, past ones with registrations and check-ins, upcoming ones filling up.

    Only when there are no events yet. Registrations and check-ins are made
    with the times they would have had (``now=``), so past events went
    through the same rules as live ones; members who registered and never
    came become no-shows.
    """
    if db.session.scalar(select(func.count()).select_from(Event)):
        return
    units = list(db.session.scalars(select(Unit).order_by(Unit.path)))
    if not units or not wards:
        return
    ward_level = wards[0].level
    # Active members, loaded once; their units are all in the session already (``units``), so the
    # area rule reading ``member.unit.path`` for every registration costs no query.
    people = list(db.session.scalars(
        select(Member).where(Member.status == "active", Member.deleted_at.is_(None)).order_by(Member.id)
    ))
    today = utcnow().replace(hour=9, minute=0, second=0, microsecond=0)
    plans: list[tuple[Unit, tuple]] = [(unit, plan) for unit in units if unit.level == 0 for plan in PROVINCE_EVENTS]
    constituencies = [unit for unit in units if unit.level == ward_level - 1]
    plans += [(unit, CONSTITUENCY_EVENTS[i % 2]) for i, unit in enumerate(constituencies)]
    plans += [(wards[0], plan) for plan in WARD_EVENTS]
    plans += [(ward, WARD_EVENTS[i % 2]) for i, ward in enumerate(wards[4::5])]
    for unit, plan in plans:
        start = today + timedelta(days=plan[2] + rng.randrange(-2, 3), hours=rng.choice([0, 1, 5, 8]))
        event, wanted, came = _event(unit, plan, start, rng)
        area = [p for p in people if p.unit.path.startswith(unit.path)]
        chosen = rng.sample(area, min(wanted, len(area)))
        if portal_member is not None and portal_member in area and portal_member not in chosen:
            chosen[:1] = [portal_member]  # member@demo.test meets a living My events page
        past = start < utcnow()
        opened = (start - timedelta(days=12)) if past else utcnow() - timedelta(days=3)
        for i, person in enumerate(chosen):
            events.register(None, event, person, source="self" if i % 3 else "staff",
                            now=opened + timedelta(minutes=7 * i))
        if not past:
            continue
        door = start + timedelta(minutes=20)
        for i, person in enumerate(p for p in chosen if p is portal_member or rng.random() < came):
            events.check_in(None, event, member_id=person.id, gate="Main gate" if i % 2 else "Side gate",
                            now=door + timedelta(seconds=41 * i))
        if event.walk_ins_allowed:
            for i, person in enumerate([p for p in area if p not in chosen][:3]):
                events.check_in(None, event, member_id=person.id, gate="Main gate",
                                now=door + timedelta(minutes=30 + i))
    events.mark_no_shows(None)  # every finished event at once: who registered and never came


# --- cards -------------------------------------------------------------------------------


def _cards(portal_member: Member | None, rng: random.Random) -> None:
    """Cards for most (about 85%) active members, a few premium and lifetime; two lost and reissued.

    Only when there are no cards yet. The portal's demo member always has one.
    """
    if db.session.scalar(select(func.count()).select_from(MembershipCard)):
        return
    active = list(db.session.scalars(
        select(Member).where(Member.status == "active", Member.deleted_at.is_(None)).order_by(Member.id)
    ))
    chosen = [m for m in active if m is portal_member or rng.random() < 0.85]
    by_type: dict[str, list[Member]] = {"standard": [], "premium": [], "lifetime": []}
    for member in chosen:
        pick = rng.random()
        kind = "lifetime" if pick < 0.03 else "premium" if pick < 0.12 else "standard"
        by_type["standard" if member is portal_member else kind].append(member)  # the portal shows an expiry
    issued: list[MembershipCard] = []
    for kind, holders in by_type.items():
        if holders:
            issued += cards.issue_cards(None, holders, kind, reason="Demo data")
    for card in [c for c in issued if c.member is not portal_member][:2]:
        cards.reissue_card(None, card, "Reported lost")


def _referrals(rng: random.Random, now: datetime) -> None:
    """Who brought whom over the last twelve weeks: credits, joins awaiting approval, invitations, expiries.

    Only when there are no referrals yet; through the referral service, so
    the ledger, the statuses and the notifications are what real use leaves.
    """
    from app.services import referrals

    if db.session.scalar(select(func.count()).select_from(Referral)):
        return
    people = list(db.session.scalars(select(Member).where(Member.deleted_at.is_(None)).order_by(Member.id)))
    active = [m for m in people if m.status == "active"]
    if len(active) < 10:
        return
    recruiters = rng.sample(active, max(3, len(active) // 12))
    pool = [m for m in people if m.status in ("active", "pending")]
    rng.shuffle(pool)
    taken = {m.id for m in recruiters}
    for n, recruiter in enumerate(recruiters):
        code = referrals.code_for(recruiter)
        for _ in range(min(len(pool), int(rng.paretovariate(1.6)))):
            friend = pool.pop()
            if friend.id in taken:
                continue
            taken.add(friend.id)
            when = now - timedelta(days=rng.uniform(1, 84))
            try:
                with db.session.begin_nested():
                    referrals.record_join(friend, code, source=rng.choice(("link", "code")), now=when)
                    referrals.on_member_activated(friend, now=when + timedelta(days=rng.uniform(0.5, 5)))
            except ServiceError:
                continue
        if n % 3 == 0:  # an invitation by phone: still open, or expired when older than the expiry period
            days_ago = rng.uniform(1, 90)
            phone = f"+26095{rng.randrange(10**7):07d}"
            try:
                with db.session.begin_nested():
                    referrals.record_prospect(recruiter, f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                                              phone, None, now=now - timedelta(days=days_ago))
            except ServiceError:
                continue
    referrals.expire_sweep(now)


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
    portal_login = db.session.scalar(select(User).where(User.email == "member@demo.test"))
    portal_member = portal_login.member if portal_login is not None else None
    _events(wards, portal_member, random.Random(seed + 1))
    _cards(portal_member, random.Random(seed + 2))
    _referrals(random.Random(seed + 3), utcnow())
    db.session.flush()
    return {
        "password": DEMO_PASSWORD,
        "logins": ["superadmin@demo.test", "admin@demo.test", "coordinator@demo.test", "member@demo.test"],
        "coordinator_ward": f"{coordinator_ward.name} ({coordinator_ward.code})",
        "members": db.session.scalar(select(func.count()).select_from(Member)),
        "events": db.session.scalar(select(func.count()).select_from(Event)),
        "cards": db.session.scalar(select(func.count()).select_from(MembershipCard)),
        "referrals": db.session.scalar(select(func.count()).select_from(Referral)),
    }
