"""The check-in operation under spectree with pydantic 2."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Flask
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic import StringConstraints, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError
from spectree import Response as SpecResponse
from spectree import SpecTree

from app.models import REGISTRATION_STATUSES
from bench.schema_libs.contract import (
    MAX_GATE_CHARS, MAX_ID, NONCE_DOC, NONCE_RE, ONE_OF_MESSAGE, PREFIX, REASONS, RESULTS, STORABLE_MESSAGE,
    TOKEN_DOC, ContractError, answer_values, bare_app, broken_rules, contract_errors, not_an_object, storable,
    unstorable, wrong_type,
)


def _pd_storable(value: str) -> str:
    if not storable(value):
        raise PydanticCustomError("text_not_storable", STORABLE_MESSAGE)
    return value


Text = Annotated[str, AfterValidator(_pd_storable)]
# pydantic writes UTC as "Z"; Muster's contract is isoformat's "+00:00".
# A PlainSerializer alone documents a bare string: the format is restated for the document.
Timestamp = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]


class CheckinIn(BaseModel):
    """The check-in body. Exactly one of token and member_id."""

    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "12" and 4.0 are not ids, true is not 1

    token: Text | None = Field(None, description=TOKEN_DOC)
    member_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    gate: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_GATE_CHARS),
                    AfterValidator(_pd_storable)] | None = None
    nonce: Annotated[str, StringConstraints(pattern=NONCE_RE.pattern)] | None = Field(None, description=NONCE_DOC)

    @model_validator(mode="after")
    def one_of(self) -> CheckinIn:
        if (self.token is None) == (self.member_id is None):
            raise PydanticCustomError("one_of", ONE_OF_MESSAGE, {"field": "token"})
        if self.gate == "":
            self.gate = None
        return self


class MemberSummary(BaseModel):
    id: int
    membership_number: str
    first_name: str
    last_name: str
    full_name: str
    status: str
    unit: str | None


class CheckinResult(BaseModel):
    result: Literal[RESULTS]  # type: ignore[valid-type]
    reason: Literal[tuple(sorted(REASONS))] | None  # type: ignore[valid-type]
    message: str
    member: MemberSummary | None
    first_checked_in_at: Timestamp | None
    first_gate: str | None = None
    checked_in_at: Timestamp | None = None
    gate: str | None = None
    walk_in: bool = False
    registration_status: Literal[REGISTRATION_STATUSES] | None = None  # type: ignore[valid-type]
    event_id: int


class ErrorBody(BaseModel):
    """Muster's error shape, documented for 422 instead of pydantic's ValidationError list."""

    error: str
    details: dict[str, Any] | None


_PD_TYPES = {"string_type": "string", "int_type": "integer", "bool_type": "boolean"}


def pydantic_error(exc: ValidationError) -> ContractError:
    """Muster's shape from pydantic's errors, told apart by their machine-readable ``type``."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        kind, loc = error["type"], error["loc"]
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            return not_an_object()
        field = str(loc[0]) if loc else (error.get("ctx") or {}).get("field", "")
        if kind in _PD_TYPES:
            return wrong_type(field, _PD_TYPES[kind])
        if kind == "text_not_storable":
            return unstorable(field)
        fields.setdefault(field, "Unknown field." if kind == "extra_forbidden" else error["msg"])
    return broken_rules(fields)


def _spectree_before(req, resp, req_validation_error, instance, model_adapter) -> None:
    """spectree validates ``get_json(silent=True) or {}``: tell a non-object body apart first."""
    if not isinstance(req.get_json(silent=True), dict):
        if req.get_json(silent=True) is None and req.get_data(cache=True):
            raise ContractError(400, "The request body is not valid JSON.")
        raise not_an_object()
    if req_validation_error is not None:
        raise pydantic_error(req_validation_error)


def spectree_app() -> Flask:
    app = bare_app("spectree")
    bp = Blueprint("api", __name__, url_prefix=PREFIX)
    contract_errors(bp)
    # mode=strict: only decorated views go in the document (normal mode lists every console route too).
    # Plain model names in components (the default adds a hash of the module: "CheckinIn.bee8e03").
    spec = SpecTree("flask", title="Muster", version="1", mode="strict", path="api/v1/apidoc",
                    validation_error_status=422, validation_error_model=ErrorBody, before=_spectree_before,
                    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda _parent, child: child)

    @bp.post("/events/<int:event_id>/checkin")
    @spec.validate(json=CheckinIn, resp=SpecResponse(HTTP_200=CheckinResult), operation_id="api.checkin")
    def checkin(event_id: int, json: CheckinIn):
        """Check a member in at the door."""
        return CheckinResult.model_validate(answer_values(event_id))

    app.register_blueprint(bp)
    spec.register(app)
    return app


def spectree_round_trip(body: bytes, event_id: int) -> bytes:
    try:
        CheckinIn.model_validate(json.loads(body))  # what spectree's Flask plugin does: get_json, then validate
    except ValidationError as exc:
        raise pydantic_error(exc) from None
    return CheckinResult.model_validate(answer_values(event_id)).model_dump_json().encode()
