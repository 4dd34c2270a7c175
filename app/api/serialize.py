"""List answers: a page of items with the links a client follows, the same for every list.

The items themselves are each resource's answer models (``app/api/schema.py``
and the API modules); a list's ``Page`` subclass validates the whole page.
"""

from __future__ import annotations

from datetime import date, datetime
from math import ceil
from typing import Any

from flask import url_for

def page_of(items: list[Any], page: int, per_page: int, total: int, endpoint: str, **filters: Any) -> dict[str, Any]:
    """A list answer: ``{"items", "page", "per_page", "total", "links"}``, links keeping the filters.

    Empty filters are left out of the links; lists are joined with commas and
    dates written ISO, the way list endpoints read them back.
    """
    last_page = max(1, ceil(total / per_page))
    args: dict[str, Any] = {}
    for key, value in filters.items():
        if value in (None, "", []):
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, (date, datetime)):
            value = value.isoformat()
        args[key] = value

    def link(p: int) -> str:
        return url_for(endpoint, page=p, per_page=per_page, **args)

    return {
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": total,
        "links": {
            "self": link(page),
            "next": link(page + 1) if page < last_page else None,
            "prev": link(min(page - 1, last_page)) if page > 1 else None,
        },
    }
