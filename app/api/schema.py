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

from datetime import date, datetime, timezone
from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema,
)
from pydantic_core import PydanticCustomError, PydanticUseDefault

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


# Constraints come before the validator, or pydantic documents them as "ge"/"le" instead of minimum/maximum.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]
Integer = Annotated[int, BeforeValidator(_integral)]


def _lowered(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def Text(max_length: int, *, min_length: int | None = None, pattern: str | None = None,
         lower: bool = False) -> Any:  # noqa: N802
    """A string of at most ``max_length`` characters once stripped, as the services count them.

    ``lower``: read lower-cased before the ``pattern`` is checked (role names).
    """
    text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=max_length, min_length=min_length,
                                            pattern=pattern)]
    return Annotated[text, BeforeValidator(_lowered)] if lower else text


def Choice(values: tuple[str, ...] | list[str]) -> Any:  # noqa: N802
    """One of ``values`` (documented as an enum; read case-insensitively)."""
    return Annotated[Literal[tuple(values)], BeforeValidator(_choice_text)]  # type: ignore[valid-type]


# Dates and times a service parses and checks itself (its messages, every field at once).
DateText = Annotated[str, Field(json_schema_extra={"format": "date"})]
DateTimeText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _utc_datetime(value: Any) -> Any:
    """An ISO 8601 date-time in UTC; a value without an offset is taken as UTC."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # astimezone overflows at the edges of year 1 and 9999
        raise PydanticCustomError(
            "datetime_format", "'{field}' must be an ISO 8601 date-time like 2027-01-31T18:00:00Z.") from None


# A date-time the API layer reads itself (no service parses it); a datetime object in the model.
DateTimeIn = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"}),
                       BeforeValidator(_utc_datetime)]


# --- query parameters ----------------------------------------------------------------------


class Query(BaseModel):
    """Query parameters: text read by the validators below; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _query_int(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticUseDefault()
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
    return Annotated[str, StringConstraints(max_length=max_length), BeforeValidator(_query_text)]


def _words(value: Any) -> Any:
    """Repeated parameters and comma-separated values alike, lower-cased."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [word.strip().lower() for item in value if isinstance(item, str)
                for word in _query_text(item).split(",") if word.strip()]
    return value


def QueryList(values: tuple[str, ...] | list[str]) -> Any:  # noqa: N802
    """Some of ``values``: ``?status=a&status=b`` or ``?status=a,b``."""
    return Annotated[list[Literal[tuple(values)]],  # type: ignore[valid-type]
                     Field(json_schema_extra={"style": "form", "explode": True}), BeforeValidator(_words)]


def _lower(value: Any) -> Any:
    if isinstance(value, str):
        value = _query_text(value).lower()
        if not value:
            raise PydanticUseDefault()
    return value


def QueryChoice(values: tuple[str, ...] | list[str]) -> Any:  # noqa: N802
    """One of ``values``, case-insensitive; empty means the default."""
    return Annotated[Literal[tuple(values)], BeforeValidator(_lower)]  # type: ignore[valid-type]


def _query_date(value: Any) -> Any:
    if isinstance(value, str):
        text = _query_text(value)
        if not text:
            raise PydanticUseDefault()
        try:
            return date.fromisoformat(text[:20])
        except ValueError:
            raise PydanticCustomError("date_format", "'{field}' must be a date like 2027-01-31.") from None
    return value


QueryDate = Annotated[date, BeforeValidator(_query_date)]


def _query_datetime(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticUseDefault()
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
