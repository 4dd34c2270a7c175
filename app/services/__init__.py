"""Business rules as plain functions, one module per domain.

Services take models and plain values (never the request or a form), enforce
the rules, flush, and raise ServiceError with a message a person can read.
The caller (view, API handler, CLI command, job) commits once.
"""

from app.services.errors import ServiceError

__all__ = ["ServiceError"]
