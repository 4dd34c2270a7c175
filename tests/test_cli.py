"""CLI commands: demo data and admin creation."""

from sqlalchemy import func, select

from app.extensions import db
from app.models import Member, RoleAssignment, Unit, User


def test_seed_demo_is_idempotent(runner, ctx, client):
    first = runner.invoke(args=["seed-demo", "--members", "120"])
    assert first.exit_code == 0, first.output
    assert "Demo data ready: 120 members." in first.output
    assert "coordinator@demo.test coordinates" in first.output
    counts = (db.session.scalar(select(func.count()).select_from(Unit)),
              db.session.scalar(select(func.count()).select_from(Member)),
              db.session.scalar(select(func.count()).select_from(User)))
    assert counts == (3 + 6 + 12 + 36, 120, 4)
    second = runner.invoke(args=["seed-demo", "--members", "120"])
    assert second.exit_code == 0
    again = (db.session.scalar(select(func.count()).select_from(Unit)),
             db.session.scalar(select(func.count()).select_from(Member)),
             db.session.scalar(select(func.count()).select_from(User)))
    assert again == counts
    skipped = runner.invoke(args=["seed-demo", "--if-empty"])
    assert "already has data" in skipped.output
    coordinator = db.session.scalar(select(User).where(User.email == "coordinator@demo.test"))
    assert coordinator.assignments[0].unit.level_name == "ward"
    member_login = db.session.scalar(select(User).where(User.email == "member@demo.test"))
    assert member_login.member.unit_id == coordinator.assignments[0].unit_id
    from tests.conftest import login

    assert login(client, "coordinator@demo.test", "demo-password").headers["Location"] == "/admin/"


def test_create_admin(runner, ctx, client):
    result = runner.invoke(args=["users", "create-admin", "Boss@Example.org", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "boss@example.org"))
    roles = [a.role.name for a in db.session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user.id))]
    assert roles == ["super_admin"]
    short = runner.invoke(args=["users", "create-admin", "x@example.org", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    from tests.conftest import login

    assert login(client, "boss@example.org", "long-enough-pw").headers["Location"] == "/admin/"
