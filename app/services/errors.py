"""The one exception type services raise when a rule is broken."""

from __future__ import annotations

from typing import Any


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
