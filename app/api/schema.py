"""The building blocks of the API's schemas (pydantic 2): each resource's models are made of these.

One model per resource and direction validates the input, serializes the
answer and becomes the OpenAPI document (``app/api/spec.py``), so what the
document says is what the API does:

- ``Body``: a JSON request body. Strict, as JSON is typed: ``"12"`` and
  ``true`` are not ids, unknown fields are refused. What the document
  declares (``maxLength``, ``enum``, ``minimum``, ``pattern``) the model
  enforces. A body whose resource has a validator of its own in the services
  (``members.clean``, ``events.clean_event``) names it as ``service_check``:
  when the schema refuses a rule, that validator runs too, so the 422 still
  lists every field at fault at once (``app/api/inputs.py``).
- ``Query``: query parameters, which are text: numbers are plain ASCII
  digits (``services.inputs.parse_int``), free text is stripped, lists are
  repeated parameters or comma-separated, unknown parameters are ignored.
- ``Out``: an answer, read from a model's attributes or a service's dict.
  Times are written as ``isoformat()`` gives them (UTC as ``+00:00``, as
  the API always wrote them; pydantic's own JSON would write ``Z``).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.api.context import MAX_ID
from app.services.inputs import parse_int

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200


# --- bodies ----------------------------------------------------------------------------


class Body(BaseModel):
    """A JSON request body: strict types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")

    # The resource's own validator (takes the body as sent), run when the schema refuses a rule.
    service_check: ClassVar[Callable[[dict[str, Any]], Any] | None] = None
    # A message for people per field, instead of the generic one, when the schema refuses it.
    messages: ClassVar[dict[str, str]] = {}

    def values(self) -> dict[str, Any]:
        """The fields the client sent, as sent (what the services take; PUT changes only these)."""
        return self.model_dump(exclude_unset=True, by_alias=True)


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 4 and 4.0 alike (1.5, true and "4" stay refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _choice_text(value: Any) -> Any:
    """A choice is a string: 5 is the wrong type (400), "robot" a wrong value (422).

    Case and surrounding spaces do not matter, as they never did to the services ("Female" is female).
    """
    if value is None:
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value.strip().lower()


def Integer(*, ge: int | None = None, le: int | None = None) -> Any:  # noqa: N802
    """An integer between ``ge`` and ``le`` (4.0 is 4)."""
    # Constraints come before the validator, or pydantic documents them as "ge"/"le" instead of minimum/maximum.
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral)]


Id = Integer(ge=1, le=MAX_ID)

# What no database column can store: NUL (inputs.py refuses it with a 400 before any schema runs; the document
# says so with this pattern on every string the API reads, see spec.py). Unpaired surrogates are refused alike;
# JSON Schema's patterns cannot name them.
NO_NUL = r"^[^\x00]*$"
# str.strip()'s whitespace, which the services trim (pydantic's strip keeps \x1c-\x1f).
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Some character the services do not trim away, and no NUL: a required text ("  " is empty).
NOT_BLANK = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"


def _lowered(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _stripped(value: str) -> str:
    return value.strip()


def Text(max_length: int, *, min_length: int | None = None, pattern: str | None = None,
         lower: bool = False) -> Any:  # noqa: N802
    """A string of at most ``max_length`` characters as sent, handed on stripped as the services strip it.

    ``min_length`` (1): some text besides spaces (``NOT_BLANK``). The limits
    apply to the value as sent, as the document's JSON Schema says. ``lower``:
    read stripped and lower-cased before the limits and the ``pattern`` are
    checked (role names: " Auditor " is auditor).
    """
    if min_length and pattern is None:
        pattern = NOT_BLANK
    text = Annotated[str, StringConstraints(max_length=max_length, min_length=min_length, pattern=pattern),
                     AfterValidator(_stripped)]
    return Annotated[text, BeforeValidator(_lowered)] if lower else text


def _exact_text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def Choice(values: tuple[str, ...] | list[str], *, exact: bool = False) -> Any:  # noqa: N802
    """One of ``values`` (documented as an enum; read case-insensitively unless ``exact``: permission names)."""
    return Annotated[Literal[tuple(values)],  # type: ignore[valid-type]
                     BeforeValidator(_exact_text if exact else _choice_text)]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: \d would take other scripts' too


def _date_text(value: str) -> str:
    """A date as JSON Schema's ``date`` format writes it (the service checks that it exists)."""
    if not _ISO_DATE.fullmatch(value):
        raise PydanticCustomError("date_format", "'{field}' must be a date like 2027-01-31.")
    return value


def _datetime_text(value: str) -> str:
    """A date-time is not empty: "" is no time (null is how a client clears one)."""
    if not value.strip():
        raise PydanticCustomError(
            "datetime_format", "'{field}' must be an ISO 8601 date-time like 2027-01-31T18:00:00Z.")
    return value


# Dates and times a service parses and checks itself (its messages, every field at once).
DateText = Annotated[str, AfterValidator(_date_text), Field(json_schema_extra={"format": "date"})]
DateTimeText = Annotated[str, AfterValidator(_datetime_text), Field(json_schema_extra={"format": "date-time"})]


def _utc_datetime(value: Any) -> Any:
    """An ISO 8601 date-time in UTC; a value without an offset is taken as UTC."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError(
            "datetime_format", "'{field}' must be an ISO 8601 date-time like 2027-01-31T18:00:00Z.") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC: before (or after) any time we hold
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


# A date-time the API layer reads itself (no service parses it); a datetime object in the model.
DateTimeIn = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"}),
                       BeforeValidator(_utc_datetime)]


# --- query parameters ----------------------------------------------------------------------


class Query(BaseModel):
    """Query parameters: text read by the validators below; unknown parameters are ignored.

    A parameter sent must have a value of its type: ``?unit_id=`` or
    ``?expires_to=`` is refused like any other malformed value (leave the
    parameter out for its default). Free text (``?q=``) may be empty.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _query_int(value: Any) -> Any:
    number = parse_int(value)  # ASCII digits only: int() would take "1_000" and other scripts' digits
    if number is None:
        raise PydanticCustomError("int_parsing", "The query parameter '{field}' must be an integer.")
    return number


def QueryInt(*, ge: int | None = None, le: int | None = None) -> Any:  # noqa: N802
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_query_int)]


QueryId = QueryInt(ge=1, le=MAX_ID)
PageNumber = Annotated[QueryInt(ge=1), Field(description="Page number (pages past the end are empty).")]
PerPage = Annotated[QueryInt(ge=1, le=MAX_PER_PAGE), Field(description="Page size.")]


def _query_text(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise PydanticCustomError("text_nul", "The query parameter '{field}' may not contain NUL characters.")
        return value.strip()
    return value


def QueryText(max_length: int) -> Any:  # noqa: N802
    """Text of at most ``max_length`` characters as sent, read stripped."""
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(_query_text)]


def _words(value: Any) -> Any:
    """Repeated parameters and comma-separated values alike, lower-cased."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [word.strip().lower() for item in value if isinstance(item, str)
                for word in _query_text(item).split(",")]  # an empty word is no choice (422)
    return value


def QueryList(values: tuple[str, ...] | list[str]) -> Any:  # noqa: N802
    """Some of ``values``: ``?status=a&status=b`` or ``?status=a,b``."""
    return Annotated[list[Literal[tuple(values)]],  # type: ignore[valid-type]
                     Field(json_schema_extra={"style": "form", "explode": True}), BeforeValidator(_words)]


def _lower(value: Any) -> Any:
    return _query_text(value).lower() if isinstance(value, str) else value


def QueryChoice(values: tuple[str, ...] | list[str]) -> Any:  # noqa: N802
    """One of ``values``, case-insensitive."""
    return Annotated[Literal[tuple(values)], BeforeValidator(_lower)]  # type: ignore[valid-type]


def _query_date(value: Any) -> Any:
    if isinstance(value, str):
        text = _query_text(value)
        try:
            if _ISO_DATE.fullmatch(text):  # YYYY-MM-DD, as the document's date format says
                return date.fromisoformat(text)
        except ValueError:  # February 30th
            pass
        raise PydanticCustomError("date_format", "'{field}' must be a date like 2027-01-31.")
    return value


QueryDate = Annotated[date, BeforeValidator(_query_date)]


def _query_datetime(value: Any) -> Any:
    return _utc_datetime(_query_text(value))


QueryDateTime = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"}),
                          BeforeValidator(_query_datetime)]


class PageQuery(Query):
    page: PageNumber = 1
    per_page: PerPage = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


# --- answers -------------------------------------------------------------------------------


class Out(BaseModel):
    """An answer: read from attributes (ORM models) or a dict (a service's answer)."""

    model_config = ConfigDict(from_attributes=True)


def _iso(value: datetime) -> str:
    return value.isoformat()


# pydantic writes UTC as "Z"; the API's contract is isoformat's "+00:00". The serializer alone would
# document a bare string, so the format is restated for the document.
Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]
OutId = Annotated[int, Field(ge=1, le=MAX_ID)]
Count = Annotated[int, Field(ge=0)]


class Error(BaseModel):
    """The API's one error shape, whatever went wrong."""

    error: str = Field(description="A message a person can read.")
    details: dict[str, Any] | None = Field(
        description='Machine-readable specifics, e.g. {"field": "phone"} for a validation error; '
                    "null when there are none.")


class PageLinks(Out):
    """Paths (with the same filters) of this, the next and the previous page; null where there is none."""

    self: str
    next: str | None
    prev: str | None


class Page(Out):
    """A page of a list; each list names its items (``MemberPage.items``...)."""

    page: Annotated[int, Field(ge=1)]
    per_page: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)]
    total: Count = Field(description="Everything matching the filters in your scope.")
    links: PageLinks


class UserRef(Out):
    id: OutId
    email: str


class UnitRef(Out):
    id: OutId
    name: str
    code: str
