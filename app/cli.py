"""Flask CLI commands: demo data and user management."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.services import ServiceError, rbac
from app.services.auth import set_password


def register_commands(app: Flask) -> None:
    from app.cli_members import register as register_member_commands

    register_member_commands(app)  # flask members import / export
    from app.cli_cards import register as register_card_commands

    register_card_commands(app)  # flask cards keys / rotate-key / retire-key / expire / print
    from app.cli_storage import register as register_storage_commands

    register_storage_commands(app)  # flask storage info / migrate [--into-database]
    from app.cli_worker import register as register_worker_command

    register_worker_command(app)  # flask worker [--workers N] [--no-periodic]
    from app.cli_mail import register as register_mail_commands

    register_mail_commands(app)  # flask mail send-test ADDRESS
    from app.cli_scheduler import register as register_scheduler_commands

    register_scheduler_commands(app)  # flask scheduler run; flask jobs list / run NAME (issue 12)

    @app.cli.command("seed-demo")
    @click.option("--members", "member_count", default=2000, show_default=True, help="Members to create.")
    @click.option("--if-empty", is_flag=True, help="Do nothing when the database already has units.")
    def seed_demo_command(member_count: int, if_empty: bool) -> None:
        """Load the demo organisation (safe to run again: nothing is duplicated)."""
        from app.models import Unit
        from app.services.seed import seed_demo

        if if_empty and db.session.scalar(select(Unit.id).limit(1)) is not None:
            click.echo("Database already has data; demo data not loaded.")
            return
        info = seed_demo(member_count)
        db.session.commit()
        click.echo(f"Demo data ready: {info['members']} members.")
        click.echo(f"{info['events']} events (past and upcoming, with registrations), {info['cards']} cards.")
        click.echo(f"Logins (password '{info['password']}'): {', '.join(info['logins'])}")
        click.echo(f"coordinator@demo.test coordinates {info['coordinator_ward']}.")

    users = click.Group("users", help="Manage staff and member logins.")
    app.cli.add_command(users)

    @users.command("create-admin")
    @click.argument("email")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    def create_admin(email: str, password: str) -> None:
        """Create a super admin (or give an existing user the super_admin role)."""
        rbac.ensure_catalogue()
        email = email.strip().lower()
        user = db.session.scalar(select(User).where(User.email == email))
        try:
            if user is None:
                user = User(email=email)
                db.session.add(user)
            set_password(user, password)
            db.session.flush()
            role = rbac.role_by_name("super_admin")
            if not any(a.role_id == role.id and a.unit_id is None for a in user.assignments):
                rbac.assign_role(None, user, role, None)
        except ServiceError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None
        db.session.commit()
        click.echo(f"{email} is a super admin.")
