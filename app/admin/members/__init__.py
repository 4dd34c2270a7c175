"""The member registry in the staff console: list, search, filters, forms, status, photos, soft delete, export.

One module per concern, put together in ``view.MemberView``:

- ``listing``: which members a page shows (scope, search, filters, fast pages);
- ``filters``: the list's filters; ``forms``: the forms and their values;
- ``editing``: register and edit; ``removal``: delete, restore, bulk actions;
- ``details``: the member's page, status changes, the photo;
- ``export``: the list as CSV or XLSX.

Shared console pieces (the unit field, the subtree filter) come from
``app.admin.widgets``; the cards area is reached by URL only.

URLs (endpoint ``member``, under /admin/member/):

- ``/`` list; ``?search=`` search box; ``?unit=<id>`` members of that unit's
  subtree (links from the dashboard); filters ``flt0_status_equals``,
  ``flt0_unit_in``, ``flt0_joined_on_between|after|before``, ``flt0_tag_is``.
- ``/new/``, ``/edit/?id=``, ``/details/?id=``, ``/delete/`` (POST),
  ``/status/<id>`` (POST), ``/photo/<id>``, ``/deleted/``, ``/restore/`` (POST),
  ``/export/?format=csv|xlsx&col=...``.
"""

from __future__ import annotations

from app.admin.members.view import MemberView
from app.extensions import db
from app.models import Member


def register(admin) -> None:
    admin.add_view(MemberView(Member, db, name="Members", endpoint="member"))
