"""Checking every field of an input before refusing it, so a person corrects them all at once.

A validator wraps each field's check in ``errors.check()``; a broken rule
there (a ``ServiceError`` naming a field) is noted instead of raised, and
``raise_if_any()`` then raises one ``ValidationErrors`` carrying every field's
message. Errors that are not about a field's value (no field, or a status
other than 422, such as 403 or 409) still stop at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.services.errors import ServiceError, ValidationErrors


class FieldErrors:
    """The field errors found so far, the first message per field, in the order checked."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def has(self, *fields: str) -> bool:
        """Is any of ``fields`` already at fault? (Rules across fields skip those.)"""
        return any(field in self.errors for field in fields)

    @contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except ValidationErrors as exc:
            for field, message in exc.errors.items():
                self.add(field, message)
        except ServiceError as exc:
            if exc.field is None or exc.status != 422:
                raise
            self.add(exc.field, exc.message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationErrors(self.errors)
