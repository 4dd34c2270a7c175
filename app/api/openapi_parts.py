"""The building blocks of the OpenAPI document: schema and operation helpers, shared error responses.

``openapi`` (members, roles, units), ``events_openapi`` and ``cards_openapi``
describe their operations with these; the three parts are merged into one
document by ``openapi``, which imports the other two. Kept apart so that none
of the parts imports the module that imports it (no import cycle).
"""

from __future__ import annotations

from typing import Any

from app.api.context import MAX_ID

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """OpenAPI 3.1 spells "may be null" as a JSON Schema type list."""
    schema = dict(schema)
    schema["type"] = [schema["type"], "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def obj(properties: dict[str, Schema], required: list[str] | None = None, *, closed: bool = False,
        description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
DATE: Schema = {"type": "string", "format": "date"}
DATETIME: Schema = {"type": "string", "format": "date-time"}
STRING_LIST: Schema = {"type": "array", "items": STRING}


def json_body(schema: Schema, description: str = "") -> Schema:
    return {"required": True, "description": description,
            "content": {"application/json": {"schema": schema}}}


def ok(description: str, schema: Schema | None = None, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    if headers:
        response["headers"] = headers
    return response


ERROR_RESPONSES = {
    400: ("BadRequest", "Malformed request: the body is not a JSON object, or a value has the wrong JSON type "
                        "(details.field names it)."),
    401: ("Unauthorized", "Missing, invalid, expired or revoked bearer token (or, for /auth/token, wrong "
                          "credentials)."),
    403: ("Forbidden", "You hold the needed permission nowhere, or may see this object but not act on it."),
    404: ("NotFound", "No such object, or it lies outside your scope (the two look the same)."),
    405: ("MethodNotAllowed", "The method is not allowed on this URL (details.allowed_methods)."),
    409: ("Conflict", "A duplicate (details.field; details.existing_id when you may see it) or a state "
                      "conflict such as deleting a system role."),
    413: ("PayloadTooLarge", "The request body is too large."),
    422: ("ValidationError", "A value broke a rule; details.field names the (first) field and, when the "
                             "body's fields were checked, details.fields maps every field at fault to its message."),
    429: ("TooManyRequests", "Rate limit exceeded; see the Retry-After header."),
}


def errors(*codes: int) -> dict[str, Schema]:
    """References to the shared error responses; 401, 405 and 413 apply everywhere."""
    wanted = sorted({401, 405, 413, *codes})
    return {str(code): {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"} for code in wanted}


def path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": ID}


def query_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def operation(operation_id: str, summary: str, tag: str, responses: dict[str, Schema], *,
              description: str = "", parameters: list[Schema] | None = None, body: Schema | None = None,
              authenticated: bool = True) -> Schema:
    """One operation; ``operation_id`` is the Flask endpoint name (checked by the tests)."""
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if not authenticated:
        op["security"] = []
    return op


LOCATION = {"Location": {"description": "URL of the new resource.", "schema": STRING}}
