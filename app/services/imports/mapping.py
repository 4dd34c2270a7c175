"""Mapping columns to member fields: the fields, guessing them from headers, saved mappings.

``guess_mapping(headers)`` maps columns to member fields from their names
("Surname", "ID No", "Cell", "Ward"...); people adjust it and may save it as
a named ``ImportMapping``, applied to the next file by header name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import ImportMapping
from app.services import members as member_service
from app.services.errors import ServiceError


@dataclass(frozen=True)
class ImportField:
    key: str
    label: str
    # Header spellings that mean this field exactly, squashed to letters and digits
    # ("ID No." -> "idno"); earlier ones win when several columns match.
    names: tuple[str, ...]
    # Fragments that suggest it when no exact spelling matched ("Member Surname").
    hints: tuple[str, ...] = ()


FIELDS: tuple[ImportField, ...] = (
    ImportField("membership_number", "Membership number",
                ("membershipnumber", "membershipno", "membershipnum", "membernumber", "memberno", "membernum",
                 "membershipid", "memberid", "membership"),
                ("membershipno", "membershipnum", "memberno", "membernum")),
    ImportField("first_name", "First name",
                ("firstname", "firstnames", "givenname", "givennames", "forename", "forenames", "first",
                 "christianname", "prenom"),
                ("firstname", "forename", "givenname")),
    ImportField("last_name", "Last name (surname)",
                ("lastname", "surname", "familyname", "last", "nom", "apellido"),
                ("surname", "lastname", "familyname")),
    ImportField("full_name", "Full name (split into first and last name)",
                ("fullname", "name", "names", "membername", "fullnames", "nameandsurname")),
    ImportField("other_names", "Other names",
                ("othernames", "othername", "middlename", "middlenames", "middle"),
                ("middlename", "othername")),
    ImportField("gender", "Gender", ("gender", "sex"), ("gender",)),
    ImportField("date_of_birth", "Date of birth",
                ("dateofbirth", "dob", "birthdate", "birthday", "born", "datenaissance"),
                ("birth", "dob")),
    ImportField("national_id", "National ID",
                ("nationalid", "nationalidnumber", "nationalidno", "idno", "idnumber", "id", "nrc", "nrcno",
                 "nrcnumber", "identitynumber", "identityno", "identitycard", "idcard", "nin", "passport",
                 "passportno", "passportnumber"),
                ("nationalid", "nrc", "idno", "idnumber", "identity")),
    ImportField("phone", "Phone",
                ("phone", "phonenumber", "phoneno", "cell", "cellphone", "cellno", "cellnumber", "mobile",
                 "mobilenumber", "mobileno", "telephone", "tel", "telno", "contact", "contactnumber",
                 "contactno", "msisdn", "whatsapp"),
                ("phone", "mobile", "cell", "tel")),
    ImportField("email", "Email", ("email", "emailaddress", "mail", "emailid"), ("email",)),
    ImportField("address", "Address",
                ("address", "physicaladdress", "residentialaddress", "homeaddress", "postaladdress",
                 "residence"),
                ("address",)),
    ImportField("unit", "Ward (code or name path)",
                ("ward", "unit", "wardcode", "unitcode", "wardname", "unitname", "branch", "branchcode",
                 "unitpath", "wardpath", "location"),
                ("ward", "unit", "branch")),
    ImportField("joined_on", "Joined on",
                ("joinedon", "joined", "datejoined", "joindate", "joiningdate", "membershipdate",
                 "registrationdate", "dateregistered", "registeredon", "membersince", "dateofjoining"),
                ("joined", "joindate", "registrationdate")),
    ImportField("status", "Status", ("status", "membershipstatus", "memberstatus"), ("status",)),
    ImportField("notes", "Notes", ("notes", "note", "comments", "comment", "remarks", "remark"),
                ("note", "comment", "remark")),
    ImportField("tags", "Tags", ("tags", "tag", "labels", "groups"), ("tag",)),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}
FIELD_LABELS = {f.key: f.label for f in FIELDS}


def squash(header: Any) -> str:
    """A header reduced to folded letters and digits: 'E-mail Address ' -> 'emailaddress'."""
    text = member_service.fold(str(header or "")).replace("#", "no")
    return re.sub(r"[^0-9a-z]+", "", text)


def guess_mapping(headers: list[str]) -> list[str]:
    """The member field each column most likely holds ("" where none), each field used once."""
    squashed = [squash(h) for h in headers]
    mapping = [""] * len(headers)
    taken: set[str] = set()

    def assign(col: int, key: str) -> None:
        mapping[col] = key
        taken.add(key)

    for fld in FIELDS:  # exact spellings first, in each field's order of preference
        for name in fld.names:
            if fld.key in taken:
                break
            if fld.key == "full_name" and {"first_name", "last_name"} <= taken:
                break
            for col, text in enumerate(squashed):
                if text == name and not mapping[col]:
                    assign(col, fld.key)
                    break
    for col, text in enumerate(squashed):  # then fragments, for headers still unmapped
        if mapping[col] or not text:
            continue
        for fld in FIELDS:
            if fld.key not in taken and any(hint in text for hint in fld.hints):
                assign(col, fld.key)
                break
    if "full_name" in taken and ({"first_name", "last_name"} & taken):
        mapping = ["" if key == "full_name" else key for key in mapping]
    return mapping


def mapping_from_saved(headers: list[str], saved: ImportMapping) -> list[str]:
    """Apply a saved mapping by header name; columns it does not know keep the guess."""
    guessed = guess_mapping(headers)
    columns = saved.columns or {}
    mapping = [columns.get(squash(h), guessed[i]) if squash(h) in columns else guessed[i]
               for i, h in enumerate(headers)]
    # A guessed field that the saved mapping gives to another column yields to it.
    explicit = {columns[squash(h)] for h in headers if squash(h) in columns and columns[squash(h)]}
    return [key if (squash(headers[i]) in columns or key not in explicit) else ""
            for i, key in enumerate(mapping)]


def check_mapping(mapping: list[str], default_unit_id: int | None) -> None:
    """Refuse a mapping that cannot produce members."""
    used = [key for key in mapping if key]
    unknown = [key for key in used if key not in FIELD_BY_KEY]
    if unknown:
        raise ServiceError(f"Unknown field '{unknown[0]}'.", field="mapping")
    twice = sorted({key for key in used if used.count(key) > 1})
    if twice:
        raise ServiceError(f"{FIELD_LABELS[twice[0]]} is chosen for more than one column.", field="mapping")
    names = set(used)
    if "full_name" in names and names & {"first_name", "last_name"}:
        raise ServiceError("Choose either Full name, or First name and Last name.", field="mapping")
    if "full_name" not in names and not {"first_name", "last_name"} <= names:
        raise ServiceError("Choose the columns holding the first name and the last name (or the full name).",
                           field="mapping")
    if "unit" not in names and default_unit_id is None:
        raise ServiceError("Choose the column holding the ward, or a ward for every row.", field="unit")


def save_mapping(actor, name: str, headers: list[str], mapping: list[str], options: dict[str, Any]) -> ImportMapping:
    """Save (or replace) the actor's mapping called ``name``."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ServiceError("Give the mapping a name (80 characters at most).", field="save_as")
    row = db.session.scalar(select(ImportMapping).where(ImportMapping.created_by_id == getattr(actor, "id", None),
                                                        ImportMapping.name == name))
    if row is None:
        row = ImportMapping(name=name, created_by_id=getattr(actor, "id", None))
        db.session.add(row)
    row.columns = {squash(h): key for h, key in zip(headers, mapping) if squash(h)}
    row.options = {k: v for k, v in options.items() if k in ("date_order", "default_status")}
    db.session.flush()
    return row


def saved_mappings(actor) -> list[ImportMapping]:
    return list(db.session.scalars(select(ImportMapping)
                                   .where(ImportMapping.created_by_id == getattr(actor, "id", None))
                                   .order_by(ImportMapping.name)))

