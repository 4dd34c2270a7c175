"""Staff and member logins, roles, permissions and role assignments scoped to units."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

role_permissions = Table(
    "role_permissions",
    db.Model.metadata,
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("permission_id", ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
)


class Permission(db.Model):
    """A permission is `resource.action`; `*.*` (shown as `*`) grants everything."""

    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("resource", "action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(200), default="")

    @property
    def name(self) -> str:
        return "*" if self.resource == "*" else f"{self.resource}.{self.action}"

    def __str__(self) -> str:
        return self.name


class Role(db.Model):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    # System roles come from the seed; they can be edited but not deleted.
    is_system: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    permissions: Mapped[list[Permission]] = relationship(
        secondary=role_permissions, order_by=(Permission.resource, Permission.action)
    )

    def __str__(self) -> str:
        return self.name


def new_session_token() -> str:
    """A fresh random session id: replacing a user's ends every session signed with the old one."""
    return secrets.token_urlsafe(32)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(default=True)
    # What the session cookie names the user by (Flask-Login's get_id), instead of the
    # id: logout, a password change and deactivation replace it, so a copied cookie dies.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_ip: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped["Member | None"] = relationship(foreign_keys=[member_id])  # noqa: F821
    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user",
        foreign_keys="RoleAssignment.user_id",
        cascade="all, delete-orphan",
    )

    login_failures: Mapped[list[LoginFailure]] = relationship(
        primaryjoin="User.email == foreign(LoginFailure.email)",
        viewonly=True,
        order_by="LoginFailure.last_failed_at.desc()",
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        return self.session_token

    @property
    def locks(self) -> list[LoginFailure]:
        """The addresses this account is locked for right now (after too many failed sign-ins)."""
        now = utcnow()
        return [f for f in self.login_failures if f.locked_until is not None and f.locked_until > now]

    def __str__(self) -> str:
        return self.email


class RoleAssignment(db.Model):
    """A role given to a user at a unit (applies to its subtree) or globally (unit empty)."""

    __tablename__ = "role_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="assignments", foreign_keys=[user_id])
    role: Mapped[Role] = relationship()
    unit: Mapped["Unit | None"] = relationship()  # noqa: F821
    assigned_by: Mapped[User | None] = relationship(foreign_keys=[assigned_by_id])

    def __str__(self) -> str:
        where = self.unit.name if self.unit else "everywhere"
        return f"{self.role.name} @ {where}"


class ApiToken(db.Model):
    """A bearer token for /api/v1. Only its SHA-256 is stored; revoked tokens stay for audit."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginFailure(db.Model):
    """Failed sign-ins for one login email from one network address.

    Counting per account *and* address means that whoever hammers an account
    locks only their own address out; the owner still signs in from anywhere
    else. Rows are keyed by the email as typed (lower-cased), whether or not an
    account has it, so unknown emails behave exactly like real ones.
    """

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("email", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
