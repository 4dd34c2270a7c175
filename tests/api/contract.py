"""The OpenAPI document as a check on real answers: each answer an API test gets must be one it describes.

``tests/api/conftest.py``'s client runs every answer through ``check``: the
status must be documented for that operation, a JSON body must validate
against the documented schema (jsonschema, JSON Schema 2020-12, with the
``date`` and ``date-time`` formats checked), any other body must have a
documented media type. So every operation the API tests exercise, with every
status they provoke, holds the document to the truth, and
``tests/api/test_openapi.py`` exercises each operation once on purpose.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import unquote
from weakref import WeakKeyDictionary

from flask import Flask
from jsonschema import Draft202012Validator, FormatChecker
from werkzeug.exceptions import HTTPException

API = "/api/v1"
FORMATS = FormatChecker()


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    """ISO 8601 with an offset: the API writes UTC times as ``+00:00``."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


class Contract:
    """One app's document, indexed by operationId (the Flask endpoint)."""

    def __init__(self, app: Flask, document: dict[str, Any]) -> None:
        self.adapter = app.url_map.bind("localhost")
        self.document = document
        self.operations = {op["operationId"]: op for ops in document["paths"].values() for op in ops.values()}
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}

    def _response(self, op: dict[str, Any], status: str) -> dict[str, Any]:
        response = op["responses"][status]
        if "$ref" in response:  # a shared response of the hand-written parts (components/responses)
            response = self.document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return response

    def _validator(self, endpoint: str, status: str, schema: dict[str, Any]) -> Draft202012Validator:
        key = (endpoint, status)
        if key not in self._validators:
            # The document's components travel along so "#/components/..." references resolve.
            root = {**schema, "components": self.document["components"]}
            self._validators[key] = Draft202012Validator(root, format_checker=FORMATS)
        return self._validators[key]

    def check(self, method: str, path: str, response: Any) -> None:
        if method in ("HEAD", "OPTIONS"):
            return
        try:
            rule, _args = self.adapter.match(unquote(path.split("?")[0]), method, return_rule=True)
        except HTTPException:
            return  # no operation: routing's own 404/405 (tests/api/test_errors.py checks their shape)
        where = f"{method} {path} ({rule.endpoint})"
        op = self.operations.get(rule.endpoint)
        assert op is not None, f"{where} is not in the OpenAPI document"
        status = str(response.status_code)
        assert status in op["responses"], f"{where} answered {status}, which the document does not describe"
        content = self._response(op, status).get("content")
        if not content:
            assert response.get_data() == b"", f"{where} {status} has a body the document does not describe"
            return
        if response.mimetype != "application/json":
            assert response.mimetype in content, f"{where} {status} answered {response.mimetype}, not {list(content)}"
            return
        assert "application/json" in content, f"{where} {status} answered JSON, not {list(content)}"
        validator = self._validator(rule.endpoint, status, content["application/json"]["schema"])
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                    for e in validator.iter_errors(response.get_json())]
        assert not problems, f"{where} {status} does not match the document:\n" + "\n".join(problems[:10])


_contracts: WeakKeyDictionary[Flask, Contract] = WeakKeyDictionary()


def contract_for(client: Any) -> Contract:
    app = client.application
    if app not in _contracts:
        _contracts[app] = Contract(app, client.get(f"{API}/openapi.json").get_json())
    return _contracts[app]


def check(client: Any, method: str, path: str, response: Any) -> None:
    """Fail unless ``response`` to ``method path`` (under /api/v1) is one the document describes."""
    contract_for(client).check(method.upper(), API + path, response)
