"""Checking rows: each on its own with the registry's rules, then each batch against the file and the registry.

Each row is normalised with ``services.members.clean`` and its normalisers;
each batch is then checked against the registry with one IN query per key
(national ID, membership number, phone, email), never one query per row, and
against the rows before it in the file. A row is *new*, an *update* (an
existing member matched by national ID or membership number), *unchanged*, a
*duplicate* or an *error*, with the reason and its line number. The status
rules are the registry's own (``members.check_transition``): a new member
starts as pending or active, an existing one moves along the lifecycle.
Only a small hash per key is kept per row, for duplicates within the file.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.database import in_values
from app.extensions import db
from app.models import MEMBER_STATUSES, Member, Tag
from app.models.people import member_tags
from app.security import scope_unit_ids
from app.services import members as member_service
from app.services.errors import ServiceError
from app.services.imports.mapping import FIELD_LABELS, check_mapping
from app.services.imports.reading import FileInfo, cell_text, trimmed
from app.services.imports.values import (
    DATE_ORDERS, GENDER_WORDS, NEUTRALISED_RE, UnitResolver, looks_like_formula, parse_date, split_full_name,
)

MEMBERS = Member.__table__
TAGS = Tag.__table__
MODES = ("valid", "all")

KINDS = ("new", "update", "unchanged", "duplicate", "error")
COMPARED = ("first_name", "last_name", "other_names", "gender", "date_of_birth", "national_id", "phone", "email",
            "address", "joined_on", "notes")
KEY_LABELS = {"national_id": "national ID", "membership_number": "membership number", "phone": "phone number",
              "email": "email address"}
LOOKUP_COLUMNS = (MEMBERS.c.id, MEMBERS.c.membership_number, MEMBERS.c.unit_id, MEMBERS.c.status,
                  MEMBERS.c.deleted_at, *[MEMBERS.c[name] for name in COMPARED])


@dataclass
class ImportSettings:
    """What the person chose: the column mapping and how to read and apply the rows."""

    mapping: list[str]
    default_unit_id: int | None = None
    date_order: str = "DMY"
    default_status: str = "pending"
    mode: str = "valid"  # "valid": import the valid rows; "all": nothing unless every row is valid
    batch_size: int = 1000

    def as_dict(self) -> dict[str, Any]:
        return {"mapping": self.mapping, "default_unit_id": self.default_unit_id, "date_order": self.date_order,
                "default_status": self.default_status, "mode": self.mode, "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class FileRow:
    """One row of the file as it is checked: its cells, cleaned values, what it is (``kind``) and why."""

    __slots__ = ("line", "cells", "values", "unit_id", "unit_text", "status", "number", "tags", "problems",
                 "kind", "member_id", "changes", "keys")

    def __init__(self, line: int, cells: list[Any]) -> None:
        self.line = line
        self.cells = cells
        self.values: dict[str, Any] = {}
        self.unit_id: int | None = None
        self.unit_text: str | None = None
        self.status: str | None = None
        self.number: str | None = None
        self.tags: list[str] | None = None
        self.problems: list[str] = []
        self.kind = "error"
        self.member_id: int | None = None
        self.changes: dict[str, tuple[Any, Any]] = {}
        self.keys: list[tuple[str, str]] = []

    def fail(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.problems.append(reason)


class RowChecker:
    """Validates the rows of one file for one actor; ``Importer`` adds running and writing.

    ``_classify(rows)`` decides what each row of a batch is, against the
    registry and the rows before it (kept in ``_seen`` and ``_claimed``).
    """

    def __init__(self, actor, path: str | os.PathLike, info: FileInfo, settings: ImportSettings, *,
                 filename: str = "", report_path: str | os.PathLike | None = None) -> None:
        if settings.mode not in MODES:
            raise ServiceError("Choose how to import: the valid rows, or all or nothing.", field="mode")
        if settings.date_order not in DATE_ORDERS:
            raise ServiceError("Dates are read as DMY, MDY or YMD.", field="date_order")
        if settings.default_status not in ("pending", "active"):
            raise ServiceError("New members start as pending or active.", field="default_status")
        check_mapping(settings.mapping, settings.default_unit_id)
        self.actor = actor
        self.actor_id = getattr(actor, "id", None)
        self.path = path
        self.info = info
        self.settings = settings
        self.filename = filename or os.path.basename(str(path))
        self.report_path = report_path
        self.columns = [(i, key, info.headers[i] if i < len(info.headers) else f"Column {i + 1}")
                        for i, key in enumerate(settings.mapping) if key]
        self.width = len(info.headers)
        self.units = UnitResolver()
        self.create_ids = self._scope("members.create")
        self.update_ids = self._scope("members.update")
        self.read_ids = self._scope("members.read")
        if settings.default_unit_id is not None and not self._may(self.create_ids, settings.default_unit_id):
            raise ServiceError("The ward chosen for every row is outside your area.", field="unit")
        self.prefix = current_app.config["MEMBER_NUMBER_PREFIX"]
        self.own_number_re = re.compile(rf"^{re.escape(self.prefix.upper())}\d+$")
        self.region = current_app.config["DEFAULT_PHONE_REGION"]
        self.mapped = {key for _i, key, _h in self.columns}
        # The column header to name in messages about a field ("Cell: ... is not a valid phone number").
        self.headers_of = {key: header for _i, key, header in self.columns}
        if "full_name" in self.headers_of:
            self.headers_of.setdefault("first_name", self.headers_of["full_name"])
            self.headers_of.setdefault("last_name", self.headers_of["full_name"])
        self.touched_units: set[int] = set()
        self._seen: dict[int, int] = {}  # hash of (key, value) -> first line, for duplicates within the file
        self._claimed: dict[int, int] = {}  # member id -> line of the row already updating it
        self._added: list[tuple[str, int]] = []  # what the current batch added to the two above
        self.status_reason = f"Imported from {self.filename}"[:200]

    # -- scope ----------------------------------------------------------------------

    def _scope(self, permission: str) -> set[int] | None:
        if self.actor is None:
            return None
        ids = scope_unit_ids(self.actor, permission)
        return None if ids is None else set(ids)

    @staticmethod
    def _may(ids: set[int] | None, unit_id: int) -> bool:
        return ids is None or unit_id in ids

    # -- one row, on its own --------------------------------------------------------

    def _normalise(self, line: int, cells: list[Any]) -> FileRow:
        row = FileRow(line, cells)
        problems = row.problems
        if len(cells) > self.width and any(cell_text(c) for c in cells[self.width:]):
            if self.info.format == "csv":
                problems.append(f"This row has {len(trimmed(cells)):,} cells but the header names only "
                                f"{self.width:,} columns.")
            else:
                problems.append(f"This row has values beyond the {self.width:,} columns the header names.")
        data: dict[str, Any] = {}
        refused: set[str] = set()
        for idx, key, header in self.columns:
            raw = cells[idx] if idx < len(cells) else None
            if raw is None:
                continue
            if isinstance(raw, str):
                raw = raw.strip()
                if not raw:
                    continue
                if raw[0] == "'":
                    raw = NEUTRALISED_RE.sub("", raw)
                if looks_like_formula(raw, key):
                    shown = raw if len(raw) <= 30 else raw[:27] + "…"
                    problems.append(f"{header}: “{shown}” is a spreadsheet formula; only plain values are imported.")
                    refused.add(key)
                    continue
            elif not isinstance(raw, (int, float, datetime, date, time)):
                problems.append(f"{header}: a spreadsheet formula; only plain values are imported.")
                refused.add(key)
                continue
            try:
                self._convert(row, key, raw, data)
            except ServiceError as exc:
                problems.append(f"{header}: {exc.message}")
        for key in ("first_name", "last_name"):
            if key not in data and not refused & {key, "full_name"}:
                label = "First name" if key == "first_name" else "Last name"
                header = self.headers_of.get(key, label)
                problems.append(f"{label} is required." if header == label else f"{header}: {label} is required.")
        if data:
            row.values = self._clean(data, problems, self.headers_of)
        if row.unit_id is None and row.unit_text is None:
            if self.settings.default_unit_id is not None:
                row.unit_id = self.settings.default_unit_id
            else:
                problems.append("No ward given.")
        if row.values.get("national_id"):
            row.keys.append(("national_id", row.values["national_id"]))
        if row.number:
            row.keys.append(("membership_number", row.number))
        if row.values.get("phone"):
            row.keys.append(("phone", row.values["phone"]))
        if row.values.get("email"):
            row.keys.append(("email", row.values["email"]))
        return row

    def _convert(self, row: FileRow, key: str, raw: Any, data: dict[str, Any]) -> None:
        if key in ("date_of_birth", "joined_on"):
            data[key] = parse_date(raw, self.settings.date_order)
        elif key == "unit":
            text = cell_text(raw)
            row.unit_text = text
            unit_id, problem = self.units.resolve(text)
            if unit_id is None:
                if self.create_ids is not None:
                    raise ServiceError(f"“{text}” is not a ward you can import into.")
                if problem == "ambiguous":
                    raise ServiceError(f"“{text}” matches several units; give its path, e.g. "
                                       "Province / District / Constituency / Ward.")
                raise ServiceError(f"Unknown ward “{text}”.")
            row.unit_id = unit_id
        elif key == "status":
            status = cell_text(raw).lower()
            if status not in MEMBER_STATUSES:
                raise ServiceError(f"Unknown status “{raw}” (use one of: {', '.join(MEMBER_STATUSES)}).")
            row.status = status
        elif key == "membership_number":
            number = re.sub(r"\s+", "", cell_text(raw)).upper()
            if len(number) > 32:
                raise ServiceError("A membership number is 32 characters at most.")
            row.number = number or None
        elif key == "gender":
            text = cell_text(raw).lower()
            gender = GENDER_WORDS.get(text, GENDER_WORDS.get(text.replace(" ", ""), text))
            data["gender"] = gender
        elif key == "full_name":
            first, last = split_full_name(cell_text(raw))
            if first:
                data["first_name"] = first
            if last:
                data["last_name"] = last
        elif key == "tags":
            row.tags = [t for t in re.split(r"[,;]", cell_text(raw)) if t.strip()]
            data["tags"] = row.tags
        else:
            data[key] = cell_text(raw)

    @staticmethod
    def _clean(data: dict[str, Any], problems: list[str], headers: dict[str, str]) -> dict[str, Any]:
        """The registry's own rules (members.clean); on a problem, field by field so every one is reported."""
        try:
            return member_service.clean(data, partial=True)
        except ServiceError:
            pass
        out: dict[str, Any] = {}
        for key, value in data.items():
            try:
                out.update(member_service.clean({key: value}, partial=True))
            except ServiceError as exc:
                problems.append(f"{headers.get(key, FIELD_LABELS.get(key, key))}: {exc.message}")
        return out

    # -- a batch against the file and the registry ----------------------------------

    def _lookup(self, rows: list[FileRow]):
        wanted: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if not row.problems:
                for key, value in row.keys:
                    wanted[key].add(value)
        found: dict[int, Any] = {}
        index: dict[str, dict[str, list[int]]] = {key: defaultdict(list) for key in KEY_LABELS}
        for key, values in wanted.items():
            if not values:
                continue
            column = MEMBERS.c[key]
            for member in db.session.execute(select(*LOOKUP_COLUMNS).where(in_values(column, sorted(values)))):
                found[member.id] = member
        for member in found.values():
            for key in KEY_LABELS:
                value = getattr(member, key)
                if value is not None:
                    index[key][value].append(member.id)
        return found, index

    def _keyless_matches(self, rows: list[FileRow]) -> dict[tuple, Any]:
        """Members identical to rows that carry no ID, number, phone or email (to stay idempotent)."""
        keyless = [r for r in rows if not r.problems and not r.keys and r.values.get("last_name")]
        if not keyless:
            return {}
        surnames = {member_service.fold(r.values["last_name"]) for r in keyless}
        units = {r.unit_id for r in keyless if r.unit_id is not None}
        matches: dict[tuple, Any] = {}
        if not units:
            return matches
        stmt = select(*LOOKUP_COLUMNS).where(in_values(MEMBERS.c.surname_key, sorted(surnames)),
                                             in_values(MEMBERS.c.unit_id, sorted(units)),
                                             MEMBERS.c.deleted_at.is_(None))
        for m in db.session.execute(stmt):
            matches.setdefault((member_service.fold(m.first_name), member_service.fold(m.last_name), m.unit_id,
                                m.date_of_birth), m)
        return matches

    def _who(self, member) -> str:
        return f"{member.first_name} {member.last_name} ({member.membership_number})"

    def _visible(self, member) -> bool:
        return self.read_ids is None or member.unit_id in self.read_ids

    def _classify(self, rows: list[FileRow]) -> None:
        found, index = self._lookup(rows)
        keyless = self._keyless_matches(rows)
        tags_of = self._existing_tags(list(found) + [m.id for m in keyless.values()]) if "tags" in self.mapped else {}
        for row in rows:
            row.kind, row.member_id, row.changes = "error", None, {}
            if row.problems:
                continue
            if self._duplicate_in_file(row):
                continue
            values = row.values
            by_id = index["national_id"].get(values.get("national_id") or "", [])
            by_number = index["membership_number"].get(row.number or "", [])
            match_id = (by_id or by_number or [None])[0]
            if by_id and by_number and by_id[0] != by_number[0]:
                row.fail("error", "The national ID and the membership number belong to different members.")
                continue
            if match_id is None and row.number and self.own_number_re.match(row.number):
                row.fail("error", f"No member has membership number {row.number} (leave it empty for new "
                                  "members: Muster numbers them).")
                continue
            if match_id is not None:
                self._as_update(row, found[match_id], index, found, tags_of)
            else:
                self._as_new(row, index, found, keyless, tags_of)
            if row.kind in ("new", "update", "unchanged"):
                self._remember(row)

    def _hash(self, key: str, value: str) -> int:
        return hash((key, value))

    def _duplicate_in_file(self, row: FileRow) -> bool:
        for key, value in row.keys:
            line = self._seen.get(self._hash(key, value))
            if line is not None:
                row.fail("duplicate", f"Same {KEY_LABELS[key]} as line {line}.")
                return True
        return False

    def _remember(self, row: FileRow) -> None:
        for key, value in row.keys:
            digest = self._hash(key, value)
            if digest not in self._seen:
                self._seen[digest] = row.line
                self._added.append(("seen", digest))
        if row.member_id is not None and row.member_id not in self._claimed:
            self._claimed[row.member_id] = row.line
            self._added.append(("claimed", row.member_id))

    def _forget_batch(self) -> None:
        """Undo what the last classified batch added to the in-file state (before a retry)."""
        for kind, key in self._added:
            (self._seen if kind == "seen" else self._claimed).pop(key, None)
        self._added = []

    def _taken_by_other(self, row: FileRow, index, found, exclude_id: int | None):
        for key in ("national_id", "phone", "email"):
            value = row.values.get(key)
            for other in index[key].get(value or "", []):
                if other != exclude_id:
                    return key, found[other]
        return None

    def _duplicate_message(self, key: str, member) -> str:
        label = KEY_LABELS[key]
        if self._visible(member):
            deleted = " (deleted; it can be restored)" if member.deleted_at is not None else ""
            return f"A member with this {label} already exists: {self._who(member)}{deleted}."
        return f"A member with this {label} already exists."

    def _as_new(self, row: FileRow, index, found, keyless, tags_of) -> None:
        clash = self._taken_by_other(row, index, found, None)
        if clash is not None:
            key, member = clash
            if member.deleted_at is None and self._visible(member) and not self._differences(row, member, tags_of):
                row.kind, row.member_id = "unchanged", member.id  # this very member, imported before
                return
            row.fail("duplicate", self._duplicate_message(key, member))
            return
        if not row.keys and keyless:
            v = row.values
            member = keyless.get((member_service.fold(v.get("first_name", "")), member_service.fold(v["last_name"]),
                                  row.unit_id, v.get("date_of_birth")))
            if member is not None and self._visible(member) and not self._differences(row, member, tags_of):
                row.kind, row.member_id = "unchanged", member.id
                return
        if row.unit_id is None or not self._may(self.create_ids, row.unit_id):
            row.fail("error", f"{self.headers_of.get('unit', 'Ward')}: “{row.unit_text}” is not a ward you can "
                              "import into.")
            return
        if row.status is not None and not self._status_allowed(row, None):
            return
        row.kind = "new"

    def _status_allowed(self, row: FileRow, current: str | None) -> bool:
        """The registry's lifecycle rule for the row's status (``current`` None: a new member)."""
        try:
            member_service.check_transition(current, row.status)
        except ServiceError as exc:
            hint = f" Import them as one, then as {row.status}." if current is None else ""
            row.fail("error", f"{self.headers_of.get('status', 'Status')}: {exc.message[0].lower()}{exc.message[1:]}"
                              f"{hint}")
            return False
        return True

    def _as_update(self, row: FileRow, member, index, found, tags_of) -> None:
        key = "national_id" if row.values.get("national_id") == member.national_id and member.national_id \
            else "membership_number"
        if not self._visible(member):
            row.fail("duplicate", f"A member with this {KEY_LABELS[key]} already exists.")
            return
        if member.deleted_at is not None:
            row.fail("error", f"This is {self._who(member)}, who was deleted; restore them first.")
            return
        if row.number and row.number != member.membership_number:
            row.fail("error", f"The national ID belongs to {self._who(member)}, not to membership number "
                              f"{row.number}.")
            return
        claimed = self._claimed.get(member.id)
        if claimed is not None:
            row.fail("duplicate", f"Line {claimed} already updates {self._who(member)}.")
            return
        clash = self._taken_by_other(row, index, found, member.id)
        if clash is not None:
            row.fail("duplicate", self._duplicate_message(*clash))
            return
        row.member_id = member.id
        changes = self._differences(row, member, tags_of)
        if not changes:
            row.kind = "unchanged"
            row.unit_id = member.unit_id
            return
        if not self._may(self.update_ids, member.unit_id):
            row.fail("error", f"You may not change {self._who(member)}: outside your area.")
            return
        if "unit_id" in changes and not self._may(self.update_ids, row.unit_id):
            row.fail("error", f"{self.headers_of.get('unit', 'Ward')}: “{row.unit_text}” is not a ward you can "
                              "move members into.")
            return
        if "status" in changes and not self._status_allowed(row, member.status):
            return
        row.kind, row.changes = "update", changes
        if row.unit_id is None or "unit_id" not in changes:
            row.unit_id = member.unit_id

    def _differences(self, row: FileRow, member, tags_of) -> dict[str, tuple[Any, Any]]:
        """Fields the row would change on ``member`` (empty cells never clear anything)."""
        changes = {}
        for key in COMPARED:
            value = row.values.get(key)
            if value is not None and value != getattr(member, key):
                changes[key] = (getattr(member, key), value)
        if row.unit_text is not None and row.unit_id is not None and row.unit_id != member.unit_id:
            changes["unit_id"] = (member.unit_id, row.unit_id)
        if row.status is not None and row.status != member.status:
            changes["status"] = (member.status, row.status)
        if row.tags is not None and "tags" in row.values:
            before = tags_of.get(member.id, [])
            if sorted(row.values["tags"]) != before:
                changes["tags"] = (before, sorted(row.values["tags"]))
        return changes

    def _existing_tags(self, ids: list[int]) -> dict[int, list[str]]:
        """The tag names of the members a batch matched, for comparing with the rows."""
        if not ids:
            return {}
        out: dict[int, list[str]] = defaultdict(list)
        stmt = (select(member_tags.c.member_id, TAGS.c.name).join(TAGS, TAGS.c.id == member_tags.c.tag_id)
                .where(in_values(member_tags.c.member_id, sorted(ids))).order_by(TAGS.c.name))
        for member_id, name in db.session.execute(stmt):
            out[member_id].append(name)
        return out

