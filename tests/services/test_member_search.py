"""The member search box: a first name alone, a membership number without its prefix or zeros, an
email prefix -- each through an index (the query plans are checked on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, insert, select, text

from app.extensions import db
from app.models import Member
from app.services import member_search, members
from app.services.member_search import search_clause


def found(q: str) -> set[str]:
    """Full names of the live members a search finds."""
    clause = search_clause(q)
    stmt = select(Member).where(Member.deleted_at.is_(None))
    if clause is not None:
        stmt = stmt.where(clause)
    return {m.full_name for m in db.session.scalars(stmt)}


@pytest.fixture()
def people(ctx, tree, make_member):
    w1 = tree["w1"]
    return {
        "mwila": make_member(w1, first_name="Mwila", last_name="Banda", email="mwila.banda@example.org"),
        "grace": make_member(w1, first_name="Grace", last_name="Mwila"),
        "elodie": make_member(w1, first_name="Élodie", last_name="Zulu", email="elodie@mail.example"),
        "joseph": make_member(w1, first_name="Joseph", last_name="Smith"),
        "smith": make_member(w1, first_name="Smith", last_name="Joseph"),
    }


def test_a_first_name_alone_finds_the_member(people):
    assert found("mwi") == {"Mwila Banda", "Grace Mwila"}  # first name Mwila, surname Mwila
    assert found("GRACE") == {"Grace Mwila"}
    assert found("elo") == found("Élo") == {"Élodie Zulu"}  # folded like surnames
    assert found("zzz") == set()


def test_two_words_are_a_first_name_and_a_surname_in_either_order(people):
    assert found("jo smi") == {"Joseph Smith", "Smith Joseph"}
    assert found("smith jos") == {"Joseph Smith", "Smith Joseph"}
    assert found("grace mwi") == {"Grace Mwila"}
    assert found("mwila banda") == {"Mwila Banda"}


def test_a_membership_number_without_prefix_or_leading_zeros(people, app):
    number = people["joseph"].membership_number  # e.g. M0000004
    sequence = int(number[len(app.config["MEMBER_NUMBER_PREFIX"]):])
    for q in (number, number.lower(), str(sequence), f"{sequence:07d}", f"{sequence:012d}",
              f"{app.config['MEMBER_NUMBER_PREFIX']}{sequence}", f" {sequence} "):
        assert found(q) == {"Joseph Smith"}, q
    assert found(str(sequence + 1000)) == set()


def test_a_number_kept_from_a_former_system_matches_as_typed(ctx, tree):
    db.session.execute(insert(Member), [{"membership_number": "ZX-0042", "first_name": "Old", "last_name": "Record",
                                         "unit_id": tree["w1"].id, "status": "active"}])
    assert found("zx-0042") == {"Old Record"}
    assert found("42") == set()


def test_an_email_prefix_finds_the_member(people):
    assert found("mwila.banda@") == {"Mwila Banda"}
    assert found("Mwila.Banda@Example.org") == {"Mwila Banda"}
    assert found("mwila.b") == {"Mwila Banda"}  # one word: surname, first name or email prefix
    assert found("elodie@mail") == {"Élodie Zulu"}
    assert found("@example") == set()  # a prefix, not a substring


def test_search_keys_follow_every_write_path(people, ctx, tree):
    mwila = people["mwila"]
    assert mwila.first_name_key == "mwila" and people["elodie"].first_name_key == "elodie"
    members.update_member(None, mwila, {"first_name": "Chanda"})
    assert found("chan") == {"Chanda Banda"} and found("mwi") == {"Grace Mwila"}
    # Rows written by a Core executemany (imports, seeding) get their keys from the column defaults.
    db.session.execute(insert(Member), [
        {"membership_number": f"T{i}", "first_name": f"Ñandú{i}", "last_name": "Ölund", "unit_id": tree["w1"].id,
         "status": "active"} for i in range(3)])
    keys = db.session.execute(select(Member.first_name_key, Member.surname_key)
                              .where(Member.membership_number == "T1")).one()
    assert tuple(keys) == ("nandu1", "olund")
    assert len(found("nandu")) == 3


# --- query plans --------------------------------------------------------------------------


def plans_while(run) -> list[str]:
    """The database's plan for every SELECT on members that ``run()`` sends, as text.

    SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN. Run them over the
    ``crowd`` (thousands of rows, fresh statistics) so the planners choose as
    they would on a real registry; the bench measures what the plans cost.
    """
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "members" in statement:
            sent.append((statement, parameters))

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent, "nothing was asked of the database"
    conn = db.session.connection()
    plans = []
    for statement, parameters in sent:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append("\n".join(row[-1] for row in rows))
        else:
            plans.append("\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)))
    return plans


def assert_indexed(plans: list[str], indexes: set[str] = frozenset()) -> None:
    """Each of ``indexes`` ("a|b": either) answers part of the plans, and nothing is read in full."""
    shown = "\n".join(plans)
    for index in indexes:
        assert any(name in shown for name in index.split("|")), (index, shown)
    for line in shown.splitlines():  # no part reads the whole table (or a whole index)
        assert not line.strip().startswith("SCAN members") and "Seq Scan" not in line, shown


def list_page_and_count(q: str) -> None:
    """The member list's page and count for a search, built as the console and the API build them."""
    where = (Member.deleted_at.is_(None), search_clause(q, live_only=True))
    db.session.execute(select(Member.id).where(*where).order_by(Member.id.desc()).limit(20)).all()
    db.session.scalar(select(func.count()).select_from(Member).where(*where))


NUMBER_INDEX = {"sqlite": "(membership_number=?)", "postgresql": "uq_members_membership_number"}


@pytest.fixture()
def crowd(people, tree):
    """3,000 more members, none matching the searches below, and fresh statistics: plans as at scale."""
    db.session.execute(insert(Member), [
        {"membership_number": f"C{i:06d}", "first_name": f"Other{i % 97}", "last_name": f"Person{i % 89}",
         "email": f"other{i}@crowd.example", "phone": f"+26095{i:07d}", "national_id": f"{i:06d}/10/1",
         "unit_id": tree["w1"].id,
         "status": "active"} for i in range(3000)])
    db.session.execute(text("ANALYZE" if db.session.get_bind().dialect.name == "sqlite" else "ANALYZE members"))
    return people


@pytest.mark.parametrize(("q", "indexes"), [
    ("mwi", {"ix_members_surname_key", "ix_members_first_name_key"}),
    ("jo smi", {"ix_members_surname_key|ix_members_first_name_key"}),
    ("mwila.b", {"ix_members_surname_key", "ix_members_first_name_key", "ix_members_email"}),
    ("mwila.banda@", {"ix_members_email"}),
    ("123", {"number"}),
    ("0000123", {"number"}),
])
def test_searches_are_answered_by_indexes(crowd, q, indexes):
    dialect = db.session.get_bind().dialect.name
    indexes = {NUMBER_INDEX[dialect] if index == "number" else index for index in indexes}
    assert_indexed(plans_while(lambda: list_page_and_count(q)), indexes)


@pytest.mark.parametrize(("q", "indexes"), [
    ("mwi", {"ix_members_surname_key", "ix_members_first_name_key"}),
    ("jo smi", {"ix_members_surname_key|ix_members_first_name_key"}),
])
def test_the_console_name_search_reads_indexes_only(crowd, tree, q, indexes):
    assert_indexed(plans_while(lambda: member_search.name_search_page(q, None, 0, 20)), indexes)
    # Within a coordinator's wards the unit index may answer instead; still no full read.
    assert_indexed(plans_while(lambda: member_search.name_search_page(q, [tree["w1"].id], 0, 20)))


def test_the_console_name_search_counts_and_pages_newest_first(people, tree):
    total, ids = member_search.name_search_page("mwi", None, 0, 1)
    assert total == 2 and ids == [people["grace"].id]
    assert member_search.name_search_page("mwi", None, 1, 1) == (2, [people["mwila"].id])
    assert member_search.name_search_page("mwi", None, 5, 20) == (2, [])
    assert member_search.name_search_page("mwi", [tree["w4"].id], 0, 20) == (0, [])
    assert member_search.name_search_page("123", None, 0, 20) is None  # not a names-only search
    members.delete_member(None, people["grace"])
    assert member_search.name_search_page("mwi", None, 0, 20) == (1, [people["mwila"].id])


def test_migration_0007_fills_the_first_name_keys(tmp_path):
    """Members registered before the upgrade get their first-name key (and stay searchable)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import TestConfig

    fresh = create_app(TestConfig(f"sqlite:///{tmp_path / 'before-0007.db'}"))
    with fresh.app_context():
        upgrade(revision="0006")
        db.session.execute(text("INSERT INTO units (id, name, code, level, path, created_at) "
                                "VALUES (1, 'W', 'W', 0, '/1/', '2020-01-01 00:00:00')"))
        db.session.execute(text(
            "INSERT INTO members (id, membership_number, first_name, last_name, surname_key, unit_id, status, "
            "joined_on, created_at, updated_at) VALUES (1, 'M0000001', 'Émile', 'Banda', 'banda', 1, 'active', "
            "'2020-01-01', '2020-01-01 00:00:00', '2020-01-01 00:00:00')"))
        db.session.commit()
        upgrade(revision="heads")
        assert db.session.scalar(text("SELECT first_name_key FROM members WHERE id = 1")) == "emile"
        assert found("emi") == {"Émile Banda"}
