"""The member list's filters: status, unit subtree, joined-on dates, tag.

URL names (``named_filter_urls``): ``flt0_status_equals``, ``flt0_unit_in``,
``flt0_joined_on_between|after|before``, ``flt0_tag_is``. Options that depend
on the user (units, tags) are filled per request (``widgets.RequestFilterOptions``).
"""

from __future__ import annotations

from flask_admin.contrib.sqla import filters as sqla_filters
from flask_login import current_user
from sqlalchemy import select

from app.admin.members.forms import STATUS_LABELS
from app.admin.widgets import RequestOptionsMixin, UnitSubtreeFilter
from app.extensions import db
from app.models import Member, Tag
from app.models.people import member_tags
from app.security import scope_filter


class TagFilter(RequestOptionsMixin, sqla_filters.BaseSQLAFilter):
    """Members carrying a tag."""

    MAX_OPTIONS = 300

    def __init__(self) -> None:
        super().__init__(Member.id, "Tag")

    def request_options(self):
        """The tags of live members the user can see: a coordinator never learns another ward's tag names."""
        stmt = select(Tag.name)
        clause = scope_filter(current_user, "members.read", Member)
        if clause is not None:  # driven from the members in scope, so a small area stays a small query
            used = (select(member_tags.c.tag_id).join(Member, Member.id == member_tags.c.member_id)
                    .where(Member.deleted_at.is_(None), clause))
            stmt = stmt.where(Tag.id.in_(used))
        names = db.session.scalars(stmt.order_by(Tag.name).limit(self.MAX_OPTIONS + 1)).all()
        if len(names) > self.MAX_OPTIONS:
            return None  # too many for a drop-down: type the tag instead
        return [(name, name) for name in names]

    def clean(self, value):
        return value.strip().lower()

    def apply(self, query, value, alias=None):
        tagged = (
            select(member_tags.c.member_id)
            .join(Tag, Tag.id == member_tags.c.tag_id)
            .where(Tag.name == value)
        )
        return query.filter(Member.id.in_(tagged))

    def operation(self):
        return "is"


class JoinedBetween(sqla_filters.DateBetweenFilter):
    def operation(self):
        return "between"


class JoinedAfter(sqla_filters.DateGreaterFilter):
    def apply(self, query, value, alias=None):
        return query.filter(Member.joined_on >= value)

    def operation(self):
        return "after"


class JoinedBefore(sqla_filters.DateSmallerFilter):
    def apply(self, query, value, alias=None):
        return query.filter(Member.joined_on <= value)

    def operation(self):
        return "before"


class StatusFilter(sqla_filters.FilterEqual):
    def operation(self):
        return "equals"


def member_filters() -> list:
    """Fresh filter instances for one view (one console per ``create_app()``)."""
    return [
        StatusFilter(Member.status, "Status", options=list(STATUS_LABELS.items())),
        UnitSubtreeFilter(),
        JoinedBetween(Member.joined_on, "Joined on"),
        JoinedAfter(Member.joined_on, "Joined on"),
        JoinedBefore(Member.joined_on, "Joined on"),
        TagFilter(),
    ]
