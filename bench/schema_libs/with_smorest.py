"""The check-in operation under flask-smorest (marshmallow 4 + webargs + apispec)."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import Flask, jsonify
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import fields as mf
from marshmallow import validate as mv
from werkzeug.exceptions import HTTPException

from app.models import REGISTRATION_STATUSES
from bench.schema_libs.contract import (
    MAX_GATE_CHARS, MAX_ID, NONCE_DOC, NONCE_RE, PREFIX, REASONS, RESULTS, STORABLE_MESSAGE, TOKEN_DOC,
    ONE_OF_MESSAGE, ContractError, answer_values, bare_app, broken_rules, contract_errors, not_an_object,
    storable, unstorable, wrong_type,
)


def _ma_storable(value: str) -> None:
    if not storable(value):
        raise ma.ValidationError(STORABLE_MESSAGE)


class CheckinInSchema(ma.Schema):
    """The check-in body; unknown fields are refused (marshmallow's default, RAISE).

    No ``Meta.description``: apispec 6.10 then leaves out ``additionalProperties: false``
    (an ``elif`` in ``schema2jsonschema``); the operation's body description says it instead.
    """

    token = mf.String(allow_none=True, validate=_ma_storable, metadata={"description": TOKEN_DOC})
    member_id = mf.Integer(strict=True, allow_none=True, validate=mv.Range(1, MAX_ID))
    gate = mf.String(allow_none=True, validate=[mv.Length(max=MAX_GATE_CHARS), _ma_storable])
    nonce = mf.String(allow_none=True, validate=mv.Regexp(NONCE_RE), metadata={"description": NONCE_DOC})

    @ma.pre_load
    def trim_gate(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("gate"), str):
            data = {**data, "gate": data["gate"].strip() or None}
        return data

    @ma.validates_schema
    def one_of(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if (data.get("token") is None) == (data.get("member_id") is None):
            raise ma.ValidationError(ONE_OF_MESSAGE, field_name="token")


class MemberSummarySchema(ma.Schema):
    id = mf.Integer(required=True)
    membership_number = mf.String(required=True)
    first_name = mf.String(required=True)
    last_name = mf.String(required=True)
    full_name = mf.String(required=True)
    status = mf.String(required=True)
    unit = mf.String(required=True, allow_none=True)


class CheckinResultSchema(ma.Schema):
    result = mf.String(required=True, validate=mv.OneOf(RESULTS))
    reason = mf.String(required=True, allow_none=True, validate=mv.OneOf(sorted(REASONS)))
    message = mf.String(required=True)
    member = mf.Nested(MemberSummarySchema, required=True, allow_none=True)
    first_checked_in_at = mf.DateTime(required=True, allow_none=True)
    first_gate = mf.String(allow_none=True)
    checked_in_at = mf.DateTime(allow_none=True)
    gate = mf.String(allow_none=True)
    walk_in = mf.Boolean()
    registration_status = mf.String(allow_none=True, validate=mv.OneOf(REGISTRATION_STATUSES))
    event_id = mf.Integer(required=True)


CHECKIN_IN, CHECKIN_OUT = CheckinInSchema(), CheckinResultSchema()
_MA_TYPES = {mf.String: "string", mf.Integer: "integer"}


def marshmallow_error(schema: ma.Schema, messages: Any) -> ContractError:
    """Muster's shape from marshmallow's messages: text only, so a type error is told by its message."""
    if not isinstance(messages, dict) or "_schema" in messages:
        return not_an_object()
    fields: dict[str, str] = {}
    for field, problems in messages.items():
        text = problems[0] if isinstance(problems, list) else str(problems)
        declared = schema.fields.get(field)
        if declared is not None and text == declared.error_messages.get("invalid"):
            return wrong_type(field, _MA_TYPES.get(type(declared), "valid"))
        if text == STORABLE_MESSAGE:
            return unstorable(field)
        fields[field] = "Unknown field." if declared is None else text
    return broken_rules(fields)


class ErrorSchema(ma.Schema):
    """Muster's error shape, documented for 422/default instead of flask-smorest's {code, status, ...}."""

    error = mf.String(required=True)
    details = mf.Dict(required=True, allow_none=True)


class MusterSmorestApi(SmorestApi):
    """flask-smorest without its app-wide HTTPException handler (issue 640).

    ``Api.init_app`` registers ``handle_http_exception`` on the *app*, so every
    console and portal 404/403/500 would answer flask-smorest's JSON. The API
    blueprint has its own handler (blueprint handlers win for its routes).
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


def smorest_app(*, keep_app_error_handler: bool = False) -> Flask:
    app = bare_app("smorest")
    app.config.update(API_TITLE="Muster", API_VERSION="1", OPENAPI_VERSION="3.1.0", OPENAPI_URL_PREFIX=PREFIX,
                      OPENAPI_JSON_PATH="openapi.json")
    api = (SmorestApi if keep_app_error_handler else MusterSmorestApi)(app)
    blp = SmorestBlueprint("events", __name__, url_prefix=PREFIX)

    @blp.errorhandler(HTTPException)
    def webargs_error(exc: HTTPException):
        # webargs aborts with 400 (not JSON) or 422 (messages per location: {"json": {...}}).
        data = getattr(exc, "data", None) or {}
        if exc.code == 400:
            error = ContractError(400, "The request body is not valid JSON.")
        elif exc.code == 422 and "messages" in data:
            error = marshmallow_error(data.get("schema") or CHECKIN_IN, data["messages"].get("json"))
        else:
            return jsonify({"error": exc.description, "details": None}), exc.code
        return jsonify({"error": error.message, "details": error.details}), error.status

    contract_errors(blp)

    @blp.post("/events/<int:event_id>/checkin")
    # An instance, not the class: webargs instantiates a class on every request (~25 us here).
    @blp.arguments(CHECKIN_IN, error_status_code=422, description="Exactly one of token and member_id.")
    @blp.response(200, CheckinResultSchema)
    def checkin(values: dict[str, Any], event_id: int):
        """Check a member in at the door."""
        return answer_values(event_id)

    api.register_blueprint(blp)
    return app


def smorest_round_trip(body: bytes, event_id: int) -> bytes:
    try:
        CHECKIN_IN.load(json.loads(body))
    except ma.ValidationError as exc:
        raise marshmallow_error(CHECKIN_IN, exc.messages) from None
    return json.dumps(CHECKIN_OUT.dump(answer_values(event_id))).encode()
