"""The member list: which members a page shows, searched and filtered, fast on a large registry.

The list stays on the members table (``unit_id IN (...)`` on the partial
index ``ix_members_live_unit_id``, newest first), the search box uses indexed
exact/prefix lookups from ``services.member_search.search_clause`` and unit
names are loaded for the rows shown only. ``list_queries`` is the one place
the list's WHERE is built: the page and the export both use it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, request
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.admin.members.forms import STATUS_BADGES, STATUS_LABELS
from app.admin.widgets import unit_subtree_clause
from app.extensions import db
from app.models import Member, Unit
from app.security import can, load_for, scope_unit_ids, subtree_unit_ids
from app.services import member_search
from app.services import members as member_service
from app.services.inputs import parse_id


def name_link(view, context, model, name):
    url = view.get_url(".details_view", id=model.id)
    return Markup(f'<a href="{escape(url)}">{escape(model.full_name)}</a>')


def status_badge(view, context, model, name):
    status = model.status
    return Markup(
        f'<span class="badge badge-{STATUS_BADGES.get(status, "secondary")}">'
        f"{escape(STATUS_LABELS.get(status, status))}</span>"
    )


def unit_name(view, context, model, name):
    return model.unit.name if model.unit is not None else ""


class MemberListMixin:
    """Queries of ``MemberView``: scope, live members, ``?unit=``, search, filters, the fast pages."""

    # -- which members ----------------------------------------------------------------

    def get_query(self):
        return super().get_query().filter(Member.deleted_at.is_(None))

    def get_count_query(self):
        return super().get_count_query().filter(Member.deleted_at.is_(None))

    def member_or_404(self, member_id: Any, action: str = "read") -> Member:
        """A live member the user may use ``members.<action>`` on: 404 out of reach, 403 without the right."""
        return load_for(current_user, Member, member_id, f"members.{action}")

    def deleted_member_or_404(self, member_id: Any) -> Member:
        """A soft-deleted member the user may restore (members.delete); 404 for a live one."""
        member = load_for(current_user, Member, member_id, "members.delete", deleted=True)
        if member.deleted_at is None:
            abort(404)
        return member

    def get_one(self, id):
        action = "update" if request.endpoint == f"{self.endpoint}.edit_view" else "read"
        return self.member_or_404(id, action)

    # -- search, sorting, ?unit= ------------------------------------------------------

    def search_placeholder(self) -> str:
        return "Name, membership no., phone, ID or email"

    def _apply_search(self, query, count_query, joins, count_joins, search):
        # Indexed exact/prefix lookups only; never ILIKE '%x%' over the registry.
        clause = member_search.search_clause(search, live_only=True)
        if clause is not None:
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)
        return query, count_query, joins, count_joins

    def _apply_sorting(self, query, joins, sort_column, sort_desc):
        query, joins = super()._apply_sorting(query, joins, sort_column, sort_desc)
        if sort_column is not None:
            # A unique tie-breaker keeps pages stable when sorting on a shared value.
            query = query.order_by(Member.id.desc() if sort_desc else Member.id.asc())
        return query, joins

    def shortcut_unit(self) -> Unit | None:
        """The unit of a ``?unit=<id>`` link, when it is one the user can see."""
        pk = parse_id(request.args.get("unit", ""))
        unit = db.session.get(Unit, pk) if pk is not None else None
        return unit if unit is not None and can(current_user, "members.read", unit) else None

    def _list_unit_ids(self) -> list[int] | None:
        """Units the list covers: the user's scope, narrowed by ``?unit=``; None means everywhere."""
        scope = scope_unit_ids(current_user, "members.read")
        raw = request.args.get("unit", "").strip()
        if not raw:
            return scope
        unit = self.shortcut_unit()
        if unit is None:
            return []
        subtree = subtree_unit_ids(unit)
        return subtree if scope is None else sorted(set(subtree) & set(scope))

    # -- the list ---------------------------------------------------------------------

    def list_queries(self, search, filters, with_count: bool = True):
        """The list's rows and count queries: scope, live members, ``?unit=``, search and filters.

        The one place the list's WHERE is built; the page and the exports both
        use it, so an export holds exactly the members the list shows.
        Returns (query, count_query, joins).
        """
        query = self.get_query()
        count_query = self.get_count_query() if with_count and not self.simple_list_pager else None
        joins: dict = {}
        count_joins: dict = {}

        unit_arg = request.args.get("unit", "").strip()
        if unit_arg:
            clause = unit_subtree_clause(unit_arg)
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)

        if self._search_supported and search:
            query, count_query, joins, count_joins = self._apply_search(query, count_query, joins, count_joins, search)
        if filters and self._filters:
            query, count_query, joins, count_joins = self._apply_filters(
                query, count_query, joins, count_joins, filters
            )
        return query, count_query, joins

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """Flask-Admin's list query, kept on the members table (no joins) for speed at scale."""
        query, count_query, joins = self.list_queries(search, filters)
        searching = bool(self._search_supported and search)
        plain_page = not searching and not filters and sort_column is None
        page_size = page_size or self.page_size

        if searching and not filters and sort_column is None and execute:
            # A names-only search: the count and the page's ids come from the name indexes alone.
            found = member_search.name_search_page(search, self._list_unit_ids(), (page or 0) * page_size,
                                                   page_size)
            if found is not None:
                return found[0], self._newest_first(found[1])

        count = count_query.scalar() if count_query is not None else None

        if plain_page and execute:
            # The default page (newest first in a subtree): merge per-unit index scans
            # where the database does that well, then load just those rows.
            unit_ids = self._list_unit_ids()
            ids = None
            if unit_ids:
                ids = member_service.live_member_page_ids(unit_ids, (page or 0) * page_size, page_size)
            if ids is not None:
                return count, self._newest_first(ids)

        query, joins = self._apply_sorting(query, joins, sort_column, sort_desc)
        query = self._apply_pagination(query, page, page_size)
        query = query.options(selectinload(Member.unit))  # one IN query for the shown rows
        if execute:
            query = query.all()
        return count, query

    @staticmethod
    def _newest_first(ids: list[int]) -> list[Member]:
        """The members with ``ids`` (a page's worth) and their units, newest first."""
        if not ids:
            return []
        rows = db.session.scalars(select(Member).where(Member.id.in_(ids)).options(selectinload(Member.unit))).all()
        return sorted(rows, key=lambda m: m.id, reverse=True)
