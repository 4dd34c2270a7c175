"""The API's contract in one place: spectree turns each operation's models into validation and the document.

Every view declares itself right under its route::

    @bp.put("/members/<pk:member_id>")
    @operation("members", responses={200: (Member, "The member after the change.")},
               errors=(400, 404, 409, 422))
    def update_member(member_id: int, json: MemberUpdate): ...

- the request: ``json: Model`` (a ``schema.Body``) and ``query: Model`` (a
  ``schema.Query``) in the signature are validated before the view runs and
  handed to it; ``<pk:...>`` path ids are documented as ids;
- the answer: the view returns the response model (or a dict spectree
  validates against it, e.g. ``page_of``), optionally with a status and
  headers; what it returns must match what the document says (a mismatch is
  a 500 and a loud error in tests). A view that answers a file or a stream
  returns a Flask ``Response`` and declares its media with ``Content``;
- ``permission=``: refused with 403 before the body is even read when the
  caller holds it nowhere (``everywhere=True``: roles, global objects);
- ``public=True``: no token needed (``auth.authenticate_request`` reads it).

The document at ``GET /api/v1/openapi.json`` is spectree's, completed here
(paths relative to the server URL, shared error responses, non-JSON answers,
``Location`` headers), built once per app. The reference for people is
``/api/docs`` (``app/api/reference.py``).

How spectree is set up, and why (see docs/api.md, "Why spectree + pydantic 2"):
``mode="strict"`` documents decorated views only (the console's routes stay
out); component names are the models' names; the plugin below reads input the
API's way (``app/api/inputs.py``: 400 for a malformed body before any schema,
our error shape for what pydantic finds) and leaves files and streams alone
(spectree's own plugin reads a returned ``Response`` whole). spectree registers
no error handler, so the console and the portal keep their HTML error pages.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Iterable

from flask import current_app, jsonify, url_for
from pydantic import Field
from spectree import Response as SpecResponse
from spectree import SpecTree, Tag
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.plugins.werkzeug_utils import werkzeug_parse_rule
from spectree.utils import get_request_model_hints

from app.api.context import API_PREFIX, MAX_ID, actor, bp
from app.api.errors import ApiError
from app.api.inputs import read_body, read_form, read_query, validate
from app.api.schema import NO_NUL, Error, Out
from app.security import can, has_permission

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
BINARY = {"type": "string", "format": "binary"}

TAGS = {tag.name: tag for tag in (
    Tag(name="auth", description="Bearer tokens."),
    Tag(name="members", description="The member registry."),
    Tag(name="roles", description="Roles and permissions."),
    Tag(name="users", description="Users' roles and effective permissions."),
    Tag(name="units", description="The geography tree."),
    Tag(name="events", description="Events, registrations, attendance and door check-in."),
    Tag(name="cards", description="Membership cards: issue, lifecycle, QR code, PDF and public verification."),
    Tag(name="referrals", description="Referrals: who brought whom, codes and join links, the points ledger, "
                                      "leaderboards and the funnel."),
    Tag(name="payments", description="Dues: membership tiers, payments (online and recorded by staff), receipts."),
    Tag(name="me", description="Self-service: the signed-in member's own profile, card and events."),
    Tag(name="jobs", description="Long work (imports, card printing) running in the background: progress, "
                                 "result and files."),
    Tag(name="scheduler", description="The scheduled sweeps (expiry, reminders, clean-up): the record of every run."),
    Tag(name="meta", description="About the API."),
)}

ERRORS = {
    400: "Malformed request: the body is not a JSON object, or a value has the wrong JSON type "
         "(details.field names it, details.expected the type).",
    401: "Missing, invalid, expired or revoked bearer token (or, for /auth/token, wrong credentials).",
    403: "You hold the needed permission nowhere, or may see this object but not act on it (details.permission).",
    404: "No such object, or it lies outside your scope (the two look the same).",
    405: "The method is not allowed on this URL (details.allowed_methods).",
    409: "A duplicate (details.field; details.existing_id when you may see it) or a state conflict such as "
         "deleting a system role.",
    413: "The request body is too large.",
    414: "The URL is too long: the server in front of the API refuses a request line over about 4 KB "
         "(gunicorn's limit) before the API reads it, so the answer is not JSON.",
    422: "A value broke a rule: details.field names the (first) field, details.fields maps every field at "
         "fault to its message.",
    429: "Rate limit exceeded; see the Retry-After header.",
    502: "A service Muster relies on (the payment provider) could not be reached or refused the request: "
         "nothing was changed, try again later.",
    503: "A service this call needs is not set up on this server.",
}
NOT_JSON = frozenset({414})  # answered by the server in front of the app
ALWAYS = (405, 413, 414)  # any URL may be sent another method, an oversized body or an overlong query


class ResponseDrift(RuntimeError):
    """A view answered something its response model does not allow: the document would be wrong."""


@dataclass(frozen=True)
class Content:
    """An answer that is not a JSON object of ours (a file, a stream, a document): media type -> schema."""

    media: dict[str, dict[str, Any]]


class MusterFlaskPlugin(FlaskPlugin):
    """spectree's Flask plugin, reading input the API's way and leaving files and streams alone."""

    def request_validation(self, request, query, json, form, headers, cookies):
        view = current_app.view_functions.get(request.endpoint or "")
        request.context = Context(
            validate(query, read_query(query), query=True) if query else None,
            validate(json, read_body(getattr(view, "api_optional_body", False))) if json else None,
            validate(form, read_form(form, getattr(view, "api_max_body", None)), query=True) if form else None,
            None, None,
        )

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        if self.is_app_response(resp):  # spectree would read it whole (a streamed export, too)
            return resp, None
        return super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)

    def parse_path(self, route, path_parameter_descriptions):
        path, parameters = super().parse_path(route, path_parameter_descriptions)
        converters = {variable: converter for converter, _args, variable in werkzeug_parse_rule(str(route))}
        for parameter in parameters:
            name = parameter["name"]
            if converters.get(name) == "pk":  # services.inputs.IdConverter: spectree does not know it
                parameter["schema"] = dict(ID_SCHEMA)
                parameter["description"] = parameter["description"] or f"The {name[:-3].replace('_', ' ')}'s id."
        return path, parameters


def _after(_req, _resp, resp_validation_error, _instance, _model_adapter) -> None:
    if resp_validation_error is not None:
        raise ResponseDrift(str(resp_validation_error))


spec = SpecTree(
    "flask", backend=MusterFlaskPlugin, mode="strict", title="Muster API", version="1.0.0",
    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=422, validation_error_model=Error, after=_after,
    security_schemes=[{"name": "bearerAuth", "data": {"type": "http", "scheme": "bearer",
                                                      "description": "A token from POST /auth/token."}}],
    security={"bearerAuth": []},
)

# What the document adds to spectree's description of each operation, by operationId.
_ADDITIONS: dict[str, dict[str, Any]] = {}


def operation(tag: str, *, responses: dict[int, tuple[Any, str]], errors: Iterable[int] = (),
              permission: str | None = None, everywhere: bool = False, public: bool = False,
              optional_body: bool = False, location: bool = False,
              max_body: Callable[[], int] | None = None) -> Callable:
    """Declare a view's contract (see the module docstring); put it right under the route decorator.

    ``responses``: status -> (model, ``Content`` or None, description).
    ``errors``: the error statuses it may answer besides those every operation
    may (405, 413, 414; 401 unless public; 403 with ``permission``; 400 and 422 with a model: a body or a
    query string can be malformed as well as break a rule).
    ``location``: its 201 (or 202, for work accepted to run later) carries a ``Location`` header.
    ``max_body``: the largest request body in bytes (a callable reading the config), for a
    ``form: Model`` (multipart) upload larger than a JSON body may be.
    """

    def decorate(view: Callable) -> Callable:
        operation_id = f"{bp.name}.{view.__name__}"
        models = get_request_model_hints(view)
        codes = {*errors, *ALWAYS, *(() if public else (401,)), *((403,) if permission else ()),
                 *((400, 422) if models else ())}
        declared: dict[str, Any] = {f"HTTP_{code}": (None if code in NOT_JSON else Error, ERRORS[code])
                                    for code in codes}
        media: dict[str, Content] = {}
        for code, (model, description) in responses.items():
            if isinstance(model, Content):
                media[str(code)] = model
                model = None
            declared[f"HTTP_{code}"] = (model, description)
        validated = spec.validate(resp=SpecResponse(**declared), tags=[TAGS[tag]],
                                  security={} if public else None, operation_id=operation_id)(view)
        entry = validated
        if permission is not None:
            allowed = can if everywhere else has_permission

            @wraps(validated)
            def entry(*args: Any, **kwargs: Any) -> Any:
                # Before the body is read: whoever may not do this anywhere learns nothing more.
                if not allowed(actor(), permission):
                    raise ApiError(403, f"You do not have permission to do this with {tag}.",
                                   {"permission": permission})
                return validated(*args, **kwargs)

        entry.api_public = public  # type: ignore[attr-defined]
        entry.api_optional_body = optional_body  # type: ignore[attr-defined]
        entry.api_max_body = max_body  # type: ignore[attr-defined]
        _ADDITIONS[operation_id] = {
            "codes": {str(code) for code in (*codes, *responses)}, "media": media,
            "needs": (permission, everywhere), "optional_body": optional_body, "location": location,
        }
        return entry

    return decorate


# --- the document ----------------------------------------------------------------------------


def _may_be_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(b.get("type") == "null" for b in schema.get("anyOf", []))


def _tidy(node: Any) -> Any:
    """pydantic's schemas, without what only confuses a reader.

    Titles repeat each field's name ("Unit Id"); ``default: null`` on a field
    that may not be null only says "optional" (a PUT's fields), which
    ``required`` already says.
    """
    if isinstance(node, dict):
        return {key: _tidy(value) for key, value in node.items()
                if not (key == "title" and isinstance(value, str))
                and not (key == "default" and value is None and not _may_be_null(node))}
    if isinstance(node, list):
        return [_tidy(value) for value in node]
    return node


def _plain_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: "null" (pydantic's ``X | None``) is no value of a URL."""
    schema = parameter["schema"]
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema = {**branches[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    if schema.get("default", ...) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    return {**parameter, "schema": schema, "required": False}


def _complete(op: dict[str, Any], additions: dict[str, Any]) -> None:
    op["responses"] = {code: response for code, response in op["responses"].items()
                       if code in additions["codes"]}
    for code, content in additions["media"].items():
        op["responses"][code]["content"] = {mime: {"schema": schema} for mime, schema in content.media.items()}
    if additions["location"]:
        for code, what in (("201", "URL of the new resource."), ("202", "URL to follow the accepted work at.")):
            if code in op["responses"]:
                op["responses"][code]["headers"] = {"Location": {"description": what, "schema": {"type": "string"}}}
    permission, everywhere = additions["needs"]
    if permission:
        needs = f"Needs {permission}" + (" everywhere (globally)." if everywhere else ".")
        op["description"] = f"{op['description']}\n\n{needs}" if op["description"] else needs
    if not op["description"]:
        del op["description"]
    if additions["optional_body"]:
        op["requestBody"]["required"] = False
    op["parameters"] = [_plain_parameter(p) if p["in"] == "query" else p for p in op["parameters"]]
    if not op["parameters"]:
        del op["parameters"]


def _text_input(schema: Any) -> None:
    """Say of every string the API reads that it may not hold NUL (``inputs.py`` refuses it with a 400).

    Strings with a ``pattern`` or an ``enum`` say what they allow already; a file (``format: binary``) is no text.
    """
    if not isinstance(schema, dict):
        return
    if (schema.get("type") == "string" and not {"pattern", "enum", "const"} & set(schema)
            and schema.get("format") != "binary"):
        schema["pattern"] = NO_NUL
    for child in (*schema.get("properties", {}).values(), *schema.get("anyOf", []), *schema.get("oneOf", []),
                  *schema.get("allOf", []), schema.get("items")):
        _text_input(child)


def _inputs(paths: dict[str, Any]) -> tuple[set[str], list[dict[str, Any]]]:
    """The components request bodies use, and the schemas of query parameters."""
    prefix = "#/components/schemas/"
    bodies: set[str] = set()
    parameters: list[dict[str, Any]] = []
    for operations in paths.values():
        for op in operations.values():
            for body in op.get("requestBody", {}).get("content", {}).values():  # JSON, or a multipart form
                ref = body.get("schema", {}).get("$ref")
                if isinstance(ref, str) and ref.startswith(prefix):
                    bodies.add(ref[len(prefix):])
            parameters.extend(p["schema"] for p in op.get("parameters", []) if p["in"] == "query")
    return bodies, parameters


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas the operations refer to, directly or through each other.

    Query models become parameters; spectree lists them as components too, where nothing uses them.
    """
    prefix = "#/components/schemas/"
    wanted: set[str] = set()
    todo = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix):] not in wanted:
                wanted.add(ref[len(prefix):])
                todo.append(schemas[ref[len(prefix):]])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {name: schema for name, schema in sorted(schemas.items()) if name in wanted}


def api_title() -> str:
    return f"{current_app.config['ORG_NAME']} — Muster API"


def build_document() -> dict[str, Any]:
    generated = copy.deepcopy(spec.spec)  # spectree's, from the routes of the current app
    paths: dict[str, Any] = {}
    for path, operations in sorted(generated["paths"].items()):
        for op in operations.values():
            _complete(op, _ADDITIONS[op["operationId"]])
        paths[path[len(API_PREFIX):] or "/"] = operations
    schemas = _referenced(paths, generated["components"]["schemas"])
    bodies, parameters = _inputs(paths)
    for schema in [*(schemas[name] for name in bodies), *parameters]:
        _text_input(schema)
    used = {name for operations in paths.values() for op in operations.values() for name in op.get("tags", [])}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": api_title(),
            "version": "1.0.0",
            "description": (
                "The membership registry as JSON. Authenticate with `POST /auth/token`, then send "
                "`Authorization: Bearer <token>` on every other request (cookies are never used). "
                "Everything you see is limited to your scope: an object outside it answers 404. "
                "Errors always have the shape `{\"error\": message, \"details\": object or null}`. "
                "Field names are snake_case; dates and times are ISO 8601 (times in UTC)."
            ),
        },
        "servers": [{"url": API_PREFIX}],
        "security": generated["security"],
        "tags": [{"name": tag.name, "description": tag.description} for tag in TAGS.values() if tag.name in used],
        "paths": _tidy(paths),
        "components": {"schemas": _tidy(schemas), "securitySchemes": generated["components"]["securitySchemes"]},
    }


def document() -> dict[str, Any]:
    """The OpenAPI document of the current app, built on first use."""
    cache = current_app.extensions.setdefault("muster_api", {})
    if "document" not in cache:
        cache["document"] = build_document()
    return cache["document"]


# --- the API describing itself ----------------------------------------------------------------


class ApiIndex(Out):
    title: str
    openapi: str = Field(description="The OpenAPI 3.1 document: this API described for programs.")
    docs: str = Field(description="The API reference for people (Swagger UI).")


@bp.get("/", strict_slashes=False)
@operation("meta", public=True, responses={200: (ApiIndex, "Where the API is described.")})
def index():
    """Where to start: links to the document and the reference."""
    return ApiIndex(title=api_title(), openapi=url_for("api.openapi_document"),
                    docs=url_for("api_reference.reference"))


@bp.get("/openapi.json")
@operation("meta", public=True,
           responses={200: (Content({"application/json": {"type": "object"}}), "The OpenAPI 3.1 document.")})
def openapi_document():
    """This document."""
    return jsonify(document())
