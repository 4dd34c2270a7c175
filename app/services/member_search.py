"""Finding members: what a search box query means, and the console list's names-only search.

Every search is an equality or a prefix range on an index -- never ILIKE
'%x%' over the registry -- so lists, counts and deep pages stay fast at a
million members (``bench/registry.py`` measures it). Names are matched on
their folded keys (``surname_key``, ``first_name_key``: byte-ordered, over
live members only), emails on the byte-ordered email column, membership
numbers in the form ``members.format_membership_number`` gives them.
"""

from __future__ import annotations

import re
from typing import Iterable

from flask import current_app
from sqlalchemy import and_, false, func, or_, select, union
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Member, Unit
from app.models.base import fold
from app.security import subtree_unit_ids
from app.services.errors import ServiceError
from app.services.members import NATIONAL_ID_RE, format_membership_number, normalize_phone


def prefix_range(column, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as an index-friendly range on a byte-ordered column."""
    if ord(prefix[-1]) >= 0x10FFFF:
        return column >= prefix
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper)


# One token holding a character that names rarely have but email addresses often do: "mwila.b".
EMAILISH_RE = re.compile(r"^[^\s@]*[._+][^\s@]*$")


def search_clause(q: str, *, live_only: bool = False) -> ColumnElement[bool] | None:
    """What a search box query means, as one WHERE clause using indexed lookups only.

    - text with "@": an email prefix ("ann.banda@", "ann.banda@mail.example");
    - text with digits: a membership number (as typed, or without its prefix
      and leading zeros: "123" and "0000123" find M0000123), a national ID,
      or a phone number when it reads as one -- exact matches only;
    - one word: a surname or first name prefix ("mwi" finds Mwila Banda and
      Grace Mwila); with ".", "_" or "+" in it an email prefix as well;
    - several words: first name and surname prefixes, in either order
      ("mwi ban", "banda mwila").

    Each part is an equality or a range on an index: membership_number,
    national_id, phone, email, and the folded names surname_key and
    first_name_key, whose indexes hold live members only. A caller searching
    live members only says so with ``live_only``: the name ranges are then
    asked of those indexes, one SELECT of ids each (an OR of them would make
    the database fetch every match from the table). The caller still filters
    the rows themselves (deleted_at, scope).
    """
    q = (q or "").strip()
    if not q:
        return None
    if "@" in q:
        return prefix_range(Member.email, q.lower())
    if any(ch.isdigit() for ch in q):
        return or_(*_exact_matches(q))
    branches = name_branches(q)
    if EMAILISH_RE.match(q):
        branches = [*(branches or []), prefix_range(Member.email, q.lower())]
    if not branches:
        return false()
    if len(branches) == 1 or not live_only:
        return or_(*branches)
    return Member.id.in_(union(*(select(Member.id).where(Member.deleted_at.is_(None), b) for b in branches)))


def _exact_matches(q: str) -> list[ColumnElement[bool]]:
    """A query with digits: a membership number, a national ID or a phone number, exactly."""
    exact = [Member.membership_number.in_(_membership_number_forms(q))]
    national_id = re.sub(r"\s+", "", q).upper()
    if NATIONAL_ID_RE.match(national_id):
        exact.append(Member.national_id == national_id)
    if len(re.sub(r"\D", "", q)) >= 7 and re.fullmatch(r"[+\d\s().-]+", q):
        try:
            exact.append(Member.phone == normalize_phone(q))
        except ServiceError:
            pass
    return exact


def name_branches(q: str) -> list[ColumnElement[bool]] | None:
    """A search made of names only, as the index ranges whose OR it means; None for any other search.

    One word is a surname or a first name prefix; several are a first name
    and a surname prefix (the first and last word), in either order.
    """
    q = (q or "").strip()
    if not q or "@" in q or any(ch.isdigit() for ch in q):
        return None
    words = [fold(w) for w in q.replace(",", " ").split() if fold(w)]
    if not words:
        return None
    if len(words) == 1:
        return [prefix_range(Member.surname_key, words[0]), prefix_range(Member.first_name_key, words[0])]
    first, last = words[0], words[-1]
    return [
        and_(prefix_range(Member.surname_key, last), prefix_range(Member.first_name_key, first)),
        and_(prefix_range(Member.surname_key, first), prefix_range(Member.first_name_key, last)),
    ]


def list_clauses(q: str = "", status: Iterable[str] = (), unit_id: int | None = None) -> list[ColumnElement[bool]]:
    """The WHERE of a filtered list of live members: a search (``q``), any of ``status``, a unit's subtree.

    The API's member list and export and ``flask members export`` filter
    alike through this; the caller adds its scope. Text that cannot be
    searched for is a ``ServiceError`` on ``q``. An unknown unit simply has
    no members: answering differently would reveal which unit ids exist
    outside the caller's area.
    """
    clauses: list[ColumnElement[bool]] = [Member.deleted_at.is_(None)]
    try:
        search = search_clause(q, live_only=True) if q else None
    except ValueError:  # e.g. a word ending in U+10FFFF has no next character for the prefix range
        raise ServiceError("This search text cannot be searched for.", field="q") from None
    if search is not None:
        clauses.append(search)
    statuses = list(status)
    if statuses:
        clauses.append(Member.status.in_(statuses))
    if unit_id is not None:
        unit = db.session.get(Unit, unit_id)
        clauses.append(Member.unit_id.in_(subtree_unit_ids(unit) if unit is not None else []))
    return clauses


def name_search_page(q: str, unit_ids: list[int] | None, offset: int, limit: int) -> tuple[int, list[int]] | None:
    """How many live members of ``unit_ids`` (None: all) a names-only search finds, and one page of their ids.

    Newest first, as the console list shows them; None when ``q`` is not a
    names-only search (the caller then uses ``search_clause``). Each name
    range is read from its index alone and only ids are united, counted and
    cut into a page: the count needs no table row, and the page sorts ids,
    not whole rows, so finding first names too costs no more than the
    surname-only search did.
    """
    branches = name_branches(q)
    if branches is None:
        return None
    scope = [] if unit_ids is None else [Member.unit_id.in_(unit_ids)]
    matches = union(*(select(Member.id).where(Member.deleted_at.is_(None), *scope, b) for b in branches))
    total = db.session.scalar(select(func.count()).select_from(matches.subquery())) or 0
    if offset >= total:
        return total, []
    page = matches.order_by(matches.selected_columns.id.desc()).limit(limit).offset(offset)
    return total, list(db.session.scalars(page))


def _membership_number_forms(q: str) -> list[str]:
    """The membership numbers ``q`` may mean: as typed, and in full when it is a sequence number.

    "123", "0000123", "m123" and "M0000123" all mean M0000123 (the prefix and
    zero padding of ``format_membership_number``); numbers kept from a former
    system match as typed.
    """
    typed = re.sub(r"\s+", "", q).upper()
    forms = [typed]
    prefix = current_app.config["MEMBER_NUMBER_PREFIX"].upper()
    sequence = typed[len(prefix):] if prefix and typed.startswith(prefix) else typed
    if sequence.isascii() and sequence.isdigit() and len(sequence) <= 18:
        full = format_membership_number(int(sequence))
        if full != typed:
            forms.append(full)
    return forms
