"""Geography: one tree of units (province > district > constituency > ward by default).

Each unit stores its materialised path ("/1/5/17/") so that a whole subtree is a
single indexed prefix query; scoping of every staff query relies on it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, binary_string, utcnow


class Unit(db.Model):
    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("parent_id", "code"),
        Index("ix_units_path", "path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # Depth in the tree: 0 for the top level. Its name comes from UNIT_LEVELS.
    level: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(binary_string(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Unit]] = relationship(back_populates="parent", order_by="Unit.name")

    @property
    def level_name(self) -> str:
        from flask import current_app

        levels = current_app.config["UNIT_LEVELS"]
        return levels[self.level] if self.level < len(levels) else f"level {self.level + 1}"

    @property
    def ancestor_ids(self) -> list[int]:
        return [int(part) for part in self.path.strip("/").split("/") if part]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"
