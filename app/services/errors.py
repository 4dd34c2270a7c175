"""The exceptions services raise: a broken rule (`ServiceError`) or access denied (`NotFound`, `Forbidden`)."""

from __future__ import annotations

from typing import Any

import werkzeug.exceptions
from werkzeug.exceptions import HTTPException


class ServiceError(Exception):
    """A broken business rule, with a message meant for the person who tried.

    ``field`` names the input at fault so forms can show the message next to
    it; ``status`` is the HTTP status the API answers with (422 by default,
    409 for conflicts such as duplicates, 404 for objects out of reach).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int = 422,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status
        self.details = details


class DuplicateError(ServiceError):
    """Another record already holds a value that must be unique."""

    def __init__(self, message: str, *, field: str | None = None, existing_id: int | None = None):
        super().__init__(
            message,
            field=field,
            status=409,
            details={"field": field, "existing_id": existing_id} if field else None,
        )
        self.existing_id = existing_id


class AccessDenied(HTTPException):
    """The actor may not do this: raised by ``app.security.authorize`` and ``load_for`` only.

    These are HTTP errors on purpose, so every face answers the same way
    without code of its own: the console and portal render their error page,
    the API its JSON error, and a view's ``except ServiceError`` (which turns
    broken rules into form messages) never swallows them. CLI commands and
    tasks catch ``AccessDenied`` and report its ``message``.
    """

    @property
    def message(self) -> str:
        """The refusal in words, as ``ServiceError.message`` (so one ``except`` can report both)."""
        return self.description or ""


class NotFound(AccessDenied, werkzeug.exceptions.NotFound):
    """Missing, or outside the actor's scope: the two answer alike, so scope reveals nothing."""

    description = "There is no such record, or it is outside your area."


class Forbidden(AccessDenied, werkzeug.exceptions.Forbidden):
    """Inside the actor's scope, but the actor lacks the permission for this action."""

    description = "You do not have permission to do this."

    def __init__(self, description: str | None = None, *, permission: str | None = None) -> None:
        super().__init__(description)
        self.permission = permission  # the permission that was missing, for the API's details


class ValidationErrors(ServiceError):
    """Several fields at fault at once (``errors``: field -> message, in the order checked).

    Forms show each message under its field and the API lists them all, so
    one try reports everything. ``field`` and ``details["field"]`` name the
    first, as for a single ``ServiceError``; ``details["fields"]`` holds all.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors))
        super().__init__(" ".join(self.errors.values()), field=first,
                         details={"field": first, "fields": self.errors})
