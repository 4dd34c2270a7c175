"""Cell values: dates in their many spellings, genders, formulas, full names, and wards.

Each function turns one cell into what the registry stores, or raises a
``ServiceError`` saying what is wrong with it; ``UnitResolver`` finds a ward
from its code, name or path with the geography loaded once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select

from app.extensions import db
from app.models import Unit
from app.services import members as member_service
from app.services.errors import ServiceError

DATE_ORDERS = ("DMY", "MDY", "YMD")


MONTHS = {name: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
     ("nov", "november"), ("dec", "december")], start=1) for name in names}
EXCEL_EPOCH = date(1899, 12, 30)
NUMERIC_DATE_RE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
ISO_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?$")
WORDY_RE = re.compile(r"^(\d{1,2})[\s\-./]*([a-z]+)\.?[\s\-./,]*(\d{2,4})$")
WORDY_US_RE = re.compile(r"^([a-z]+)\.?[\s\-./]*(\d{1,2})(?:st|nd|rd|th)?[\s,\-./]+(\d{2,4})$")


def _year(text: str) -> int:
    year = int(text)
    if len(text) <= 2:
        pivot = date.today().year % 100
        year += 2000 if year <= pivot else 1900
    return year


def parse_date(value: Any, order: str = "DMY") -> date | None:
    """A date from a cell: date cells, Excel serial numbers, ISO, d/m/y (or m/d/y) and '5 March 1990'."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial(value)
    text = str(value).strip().lower()
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{5}(\.0+)?", text):
            return _serial(float(text))
        if re.fullmatch(r"\d{8}", text):
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        match = ISO_RE.match(text)
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = NUMERIC_DATE_RE.match(text.split(" ")[0] if " 00:00" in text else text)
        if match:
            a, b, c = match.groups()
            if len(a) == 4:  # year first: y/m/d
                return date(int(a), int(b), int(c))
            day, month = (a, b) if order != "MDY" else (b, a)
            return date(_year(c), int(month), int(day))
        match = WORDY_RE.match(text)
        if match and match[2] in MONTHS:
            return date(_year(match[3]), MONTHS[match[2]], int(match[1]))
        match = WORDY_US_RE.match(text)
        if match and match[1] in MONTHS:
            return date(_year(match[3]), MONTHS[match[1]], int(match[2]))
    except ValueError:
        pass
    example = "25/04/1990" if order != "MDY" else "04/25/1990"
    raise ServiceError(f"'{value}' is not a date (write it like {example} or 1990-04-25).")


def _serial(number: float) -> date:
    """An Excel serial day number (1900 date system) as a date."""
    if not 1 <= number < 2958466:
        raise ServiceError(f"'{number}' is not a date.")
    return EXCEL_EPOCH + timedelta(days=int(number))


GENDER_WORDS = {
    "f": "female", "female": "female", "woman": "female", "w": "female", "girl": "female", "femme": "female",
    "m": "male", "male": "male", "man": "male", "boy": "male", "homme": "male",
    "o": "other", "other": "other", "x": "other", "nonbinary": "other", "non-binary": "other",
    "u": "unspecified", "unspecified": "unspecified", "unknown": "unspecified", "prefernottosay": "unspecified",
    "prefer not to say": "unspecified", "n/a": "unspecified",
}

# A value Muster itself neutralised in an export ("'+260...", "'=..."): drop the quote.
NEUTRALISED_RE = re.compile(r"^'(?=[=+\-@\t\r])")
FORMULA_TAIL_RE = re.compile(r"[|!(]")


def looks_like_formula(text: str, key: str) -> bool:
    """Would a spreadsheet run this cell? '=...' always; '+', '-', '@' with a call or a pipe.

    Phone numbers legitimately start with '+' (and may hold parentheses); they
    are validated as phone numbers anyway, so they are not second-guessed here.
    """
    if not text:
        return False
    first = text[0]
    if first == "=":
        return True
    if first == "@":
        return key != "email" or bool(FORMULA_TAIL_RE.search(text))
    if first in "+-" and key != "phone":
        return bool(FORMULA_TAIL_RE.search(text))
    return False


def split_full_name(text: str) -> tuple[str, str]:
    """'Banda, John' -> ('John', 'Banda'); 'John Mwale Banda' -> ('John Mwale', 'Banda')."""
    text = " ".join(text.split())
    if "," in text:
        last, _, first = text.partition(",")
        return first.strip(), last.strip()
    parts = text.rsplit(" ", 1)
    if len(parts) == 1:
        return "", parts[0]
    return parts[0], parts[1]


# --- units ------------------------------------------------------------------------------

UNIT_SPLIT_RE = re.compile(r"\s*(?:/|>|›|»|\\)\s*")


class UnitResolver:
    """Finds a unit from a cell: its code ('W1'), its name, or a name/code path
    ('Northern / Kasama / Lukashya / Lukashya Ward 1', or its last few parts).

    The whole tree is loaded once (it is small next to the registry) and each
    distinct cell is resolved once.
    """

    def __init__(self) -> None:
        self.paths: dict[int, str] = {}
        self.names: dict[int, str] = {}
        self.by_code: dict[str, list[int]] = defaultdict(list)
        self.by_name: dict[str, list[int]] = defaultdict(list)
        self.children: dict[int | None, list[tuple[int, str, str]]] = defaultdict(list)
        for uid, parent_id, name, code, path in db.session.execute(
            select(Unit.id, Unit.parent_id, Unit.name, Unit.code, Unit.path)
        ):
            self.paths[uid] = path
            self.names[uid] = name
            self.by_code[code.upper()].append(uid)
            self.by_name[member_service.fold(name)].append(uid)
            self.children[parent_id].append((uid, member_service.fold(name), code.upper()))
        self._cache: dict[str, tuple[int | None, str | None]] = {}

    def resolve(self, text: str) -> tuple[int | None, str | None]:
        """(unit id, None), or (None, "unknown" | "ambiguous")."""
        key = text.strip()
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._resolve(key)
        return hit

    def _resolve(self, text: str) -> tuple[int | None, str | None]:
        parts = [p for p in UNIT_SPLIT_RE.split(text) if p.strip()]
        if not parts:
            return None, "unknown"
        if len(parts) == 1:
            for found in (self.by_code.get(parts[0].upper(), []), self.by_name.get(member_service.fold(parts[0]), [])):
                if len(found) == 1:
                    return found[0], None
                if len(found) > 1:
                    return None, "ambiguous"
            return None, "unknown"
        candidates = set(self.by_code.get(parts[0].upper(), [])) | set(self.by_name.get(member_service.fold(parts[0]), []))
        for part in parts[1:]:
            folded, code = member_service.fold(part), part.upper()
            candidates = {uid for parent in candidates for uid, name, c in self.children.get(parent, [])
                          if name == folded or c == code}
        if len(candidates) == 1:
            return candidates.pop(), None
        return None, ("ambiguous" if candidates else "unknown")

    def common_ancestor(self, unit_ids: Iterable[int]) -> int | None:
        """The deepest unit whose subtree holds all of ``unit_ids``."""
        common: list[str] | None = None
        for uid in unit_ids:
            parts = self.paths.get(uid, "").strip("/").split("/")
            if common is None:
                common = parts
            else:
                n = 0
                while n < min(len(common), len(parts)) and common[n] == parts[n]:
                    n += 1
                common = common[:n]
            if not common:
                return None
        return int(common[-1]) if common and common[-1] else None

