"""``MemberView``: the member registry's Flask-Admin view, put together from one mixin per concern.

Views stay thin. Every change goes through ``app.services.members`` (which
checks the rules, the actor's scope and writes the audit log) and every query
through the scoping helper, so a coordinator sees, counts and edits only the
members of their own wards; anything else answers 404.
"""

from __future__ import annotations

from typing import Any

from app.admin.base import ScopedModelView
from app.admin.members.accounts import MemberAccountsMixin
from app.admin.members.details import MemberDetailsMixin
from app.admin.members.editing import MemberEditingMixin
from app.admin.members.export import MemberExportMixin
from app.admin.members.filters import member_filters
from app.admin.members.forms import MemberEditForm
from app.admin.members.listing import MemberListMixin, name_link, status_badge, unit_name
from app.admin.members.removal import MemberRemovalMixin
from app.admin.widgets import ConsoleForm, RequestFilterOptions
from app.models import Member


class MemberView(MemberListMixin, MemberEditingMixin, MemberAccountsMixin, MemberRemovalMixin, MemberDetailsMixin,
                 MemberExportMixin, RequestFilterOptions, ScopedModelView):
    resource = "members"
    scope_model = Member

    list_template = "admin/members/list.html"
    details_template = "admin/members/details.html"
    create_template = "admin/members/create.html"
    edit_template = "admin/members/edit.html"

    form_base_class = ConsoleForm
    form = MemberEditForm

    page_size = 20
    can_set_page_size = False
    can_export = False  # Flask-Admin's own export; ours is MemberExportMixin
    named_filter_urls = True

    column_list = ["membership_number", "last_name", "phone", "unit", "status", "joined_on"]
    column_labels = {
        "membership_number": "Membership no.",
        "last_name": "Name",
        "phone": "Phone",
        "unit": "Unit",
        "status": "Status",
        "joined_on": "Joined on",
    }
    column_formatters = {"last_name": name_link, "status": status_badge, "unit": unit_name}
    # Name sorts on the folded surname then id (see _apply_sorting): the index (surname_key, id).
    column_sortable_list = [
        ("last_name", ("surname_key",)),
        "membership_number",
        "joined_on",
        "status",
    ]
    column_default_sort = ("id", True)
    # Present so Flask-Admin shows the search box; _apply_search replaces its ILIKE scan.
    column_searchable_list = ["last_name", "membership_number", "phone", "national_id", "email"]
    column_select_related_list: list = []  # no eager joins; unit names load for the shown rows only
    column_details_list = ["membership_number", "first_name", "last_name", "status", "unit", "joined_on"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = member_filters()  # fresh instances per view (one console per create_app())
        super().__init__(*args, **kwargs)
