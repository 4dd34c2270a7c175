"""Reading request input: the JSON body and query parameters, validated by the operation's models.

Views hand the services plain values; the schemas (``app/api/schema.py``)
make sure those values have the types and limits the document declares, and
this module turns what pydantic reports into the API's error shape:

- a body that is empty, not JSON, not an object, or holds text no database
  can store (NUL, lone surrogates): 400;
- a value of the wrong JSON type (``"12"`` for an id, ``null`` for a name), or
  query text that is no number: 400 naming the field and the type expected;
- a value that breaks a declared rule (too long, not one of the choices, out of
  range, an unknown field, a missing one): 422 naming every field at fault
  (``details.fields``), the first as ``details.field``. When the body's
  resource has a validator of its own (``Body.service_check``) it runs on the
  same body, so its messages (the console's) are listed too.

Whether a value is *acceptable* beyond its schema (a real phone number, a known
role, a unit in your area) stays the services' call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import BadRequest

from app.api.context import MAX_ID
from app.api.errors import ApiError
from app.api.schema import NOT_BLANK
from app.services.errors import ServiceError, ValidationErrors

def json_object() -> dict[str, Any]:
    """The request body as a JSON object; 400 for an empty, malformed or non-object body."""
    if not request.get_data(cache=True):
        raise ApiError(400, "Send a JSON object in the request body.")
    try:
        data = request.get_json(force=True)
    except BadRequest:
        raise ApiError(400, "The request body is not valid JSON.") from None
    except RecursionError:  # absurdly deep nesting; json.loads gives up
        raise ApiError(400, "The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    _check_text(data)
    return data


def _bad_text(text: str) -> bool:
    """NUL and lone surrogates: valid JSON, but no database column can store them."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text(data: Any) -> None:
    """400 for any string (key or value) the database would refuse, before a query can fail on it."""
    stack = [(data, None)]
    while stack:  # iterative: bodies may be nested as deep as the JSON parser allows
        node, field = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if _bad_text(key):
                    raise ApiError(400, "Field names may not contain NUL or unpaired surrogate characters.")
                stack.append((value, field or key))
        elif isinstance(node, list):
            stack.extend((item, field) for item in node)
        elif isinstance(node, str) and _bad_text(node):
            raise ApiError(400, "Text may not contain NUL or unpaired surrogate characters.", {"field": field})


# --- validation by the operation's models (spectree calls these; see app/api/spec.py) ---------

# pydantic's error types for a value of the wrong JSON type (400), and the type that was expected.
_WRONG_TYPE = {
    "string_type": "string", "int_type": "integer", "bool_type": "boolean", "list_type": "string_list",
    "datetime_type": "string", "float_type": "number", "dict_type": "object", "model_type": "object",
}
# Query text that cannot be read at all (no number, a NUL): malformed, like a wrong JSON type.
_MALFORMED = frozenset({"int_parsing", "text_nul"})
EXPECTED = {
    "string": "a string", "integer": "an integer", "id": "an id (a positive integer)", "boolean": "true or false",
    "string_list": "a list of strings", "number": "a number", "object": "an object",
}


def read_body(optional: bool = False) -> dict[str, Any]:
    """The body an operation's model validates; an ``optional`` body may be empty (``{}``)."""
    if optional and not request.get_data(cache=True):
        return {}
    return json_object()


@cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields as the document shows them (by their JSON names)."""
    return model.model_json_schema()["properties"]


def _schema_of(model: type[BaseModel], field: str) -> dict[str, Any]:
    schema = _properties(model).get(field, {})
    return next((b for b in schema.get("anyOf", []) if b.get("type") != "null"), schema)


def read_query(model: type[BaseModel]) -> dict[str, Any]:
    """The parameters ``model`` declares, from the query string (a list for array parameters).

    Each is looked up by name (not by iterating the query string), so
    ``tests/test_bad_ids.py`` sees what every view reads.
    """
    values: dict[str, Any] = {}
    for name in _properties(model):
        if _schema_of(model, name).get("type") == "array":
            got = request.args.getlist(name)
            if got:
                values[name] = got
        elif name in request.args:
            values[name] = request.args[name]
    return values


def read_form(model: type[BaseModel], max_body: Any = None) -> dict[str, Any]:
    """The fields ``model`` declares, from a multipart (or urlencoded) body: files by name, the rest as text.

    Form values are text, like query parameters (``schema.Query`` models read them). ``max_body``
    (a callable) raises the body limit for this operation before the body is read: an upload
    may be larger than a JSON body.
    """
    if max_body is not None:
        request.max_content_length = int(max_body())
    values: dict[str, Any] = {}
    for name in _properties(model):
        schema = _schema_of(model, name)
        if schema.get("format") == "binary":
            upload = request.files.get(name)
            if upload is not None and (upload.filename or upload.content_length):
                values[name] = upload
        elif schema.get("type") == "array":
            got = request.form.getlist(name)
            if got:
                values[name] = got
        elif name in request.form:
            values[name] = request.form[name]
    return values


def validate(model: type[BaseModel], data: dict[str, Any], *, query: bool = False) -> Any:
    """``model`` from ``data``, or the API's 400/422 naming the fields at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise input_error(model, exc, data, query=query) from None


def _field(error: Any) -> str:
    loc = error["loc"]
    return str(loc[0]) if loc else str((error.get("ctx") or {}).get("field", ""))


def _rule_message(model: type[BaseModel], error: Any, field: str) -> str:
    """A sentence for people about a broken rule (pydantic's own are written for programmers)."""
    custom = getattr(model, "messages", {}).get(field)
    if custom:
        return custom
    kind, ctx, schema = error["type"], error.get("ctx") or {}, _schema_of(model, field)
    item = "An item of " if len(error["loc"]) > 1 else ""
    if kind == "missing":
        return f"'{field}' is required."
    if kind == "extra_forbidden":
        return f"Unknown field '{field}'."
    if kind == "string_too_long":
        return f"{item}'{field}' is too long ({ctx['max_length']} characters at most)."
    if kind == "too_long":
        return f"'{field}' has too many items ({ctx['max_length']} at most)."
    if kind == "string_too_short":
        return f"{item}'{field}' may not be empty."
    if kind == "literal_error":
        allowed = schema.get("enum") or schema.get("items", {}).get("enum") or []
        return f"{item}'{field}' must be one of: {', '.join(map(str, allowed))}."
    if kind in ("greater_than_equal", "less_than_equal") and schema.get("maximum") == MAX_ID:
        return f"'{field}' is not a valid id."
    if kind == "greater_than_equal":
        return f"'{field}' must be at least {ctx['ge']}."
    if kind == "less_than_equal":
        return f"'{field}' must be at most {ctx['le']}."
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NOT_BLANK:
        return f"{item}'{field}' may not be empty."
    if kind == "string_pattern_mismatch":
        return f"'{field}' is not in the expected form ({schema.get('description') or ctx['pattern']})."
    return error["msg"].replace("{field}", field)


def _rule_details(model: type[BaseModel], errors: list[Any], first: str) -> dict[str, Any]:
    """Specifics clients used before the schemas: the unknown fields, a parameter's choices or bounds."""
    details: dict[str, Any] = {}
    unknown = [_field(e) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        details["unknown"] = unknown
    error = next((e for e in errors if _field(e) == first), None)
    if error is None:  # the first field at fault is one only the service refused
        return details
    schema = _schema_of(model, first)
    allowed = schema.get("enum") or schema.get("items", {}).get("enum")
    if error["type"] == "literal_error" and allowed:
        details["allowed"] = allowed
    if error["type"] == "greater_than_equal":
        details["minimum"] = error["ctx"]["ge"]
    if error["type"] == "less_than_equal":
        details["maximum"] = error["ctx"]["le"]
    return details


def _service_errors(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    """What the resource's own validator says of the same body (nothing when it has none)."""
    check = getattr(model, "service_check", None)
    if check is None:
        return {}
    try:
        check(data)
    except ValidationErrors as exc:
        return exc.errors
    except ServiceError as exc:
        if exc.field and exc.status == 422:
            return {exc.field: exc.message}
    return {}


def input_error(model: type[BaseModel], exc: ValidationError, data: dict[str, Any], *,
                query: bool = False) -> Exception:
    """The API's answer to what pydantic found: the first malformed value (400), else every broken rule (422)."""
    errors = exc.errors(include_url=False)
    for error in errors:
        field, kind = _field(error), error["type"]
        if kind in _WRONG_TYPE:
            expected = _WRONG_TYPE[kind]
            if kind == "int_type" and _schema_of(model, field).get("maximum") == MAX_ID:
                expected = "id"
            elif kind == "string_type" and len(error["loc"]) > 1:
                expected = "string_list"
            label = EXPECTED[expected] + (", not null" if error["input"] is None else "")
            return ApiError(400, f"'{field}' must be {label}.", {"field": field, "expected": expected})
        if kind in _MALFORMED:
            return ApiError(400, error["msg"].replace("{field}", field), {"field": field})
    fields: dict[str, str] = {}
    for error in errors:
        fields.setdefault(_field(error), _rule_message(model, error, _field(error)))
    if not query:
        # The service's messages first (the console shows the same), then what only the schema refuses.
        service = _service_errors(model, data)
        fields = {**service, **{key: value for key, value in fields.items() if key not in service}}
    first = next(iter(fields))
    details = {"field": first, "fields": fields, **_rule_details(model, errors, first)}
    if query:
        return ApiError(422, fields[first], details)
    failure = ValidationErrors(fields)
    failure.details = details
    return failure
