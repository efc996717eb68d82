"""A small error hierarchy that says what the user sees.

Services raise these with a message in plain Chinese (the UI's language); the API layer turns them
into `{"error": {"code", "message", "fields"}}` with their status, and console pages show the message.
Anything else that escapes a request is a bug: a 500 with a request id, never a traceback.
"""

from __future__ import annotations

from typing import Any


class ScrmError(Exception):
    """Base of the errors a caller is shown; `status` and `code` are what the API answers."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = dict(fields or {})
        if field:
            self.fields.setdefault(field, [message])


class UserValueError(ScrmError, ValueError):
    """A value the user gave that cannot be used (an unknown tag, a name too long): 422."""

    status = 422
    code = "invalid"


class NotFound(ScrmError, LookupError):
    """No such thing, or not one the caller may see (the two are never told apart): 404."""

    status = 404
    code = "not_found"


class Conflict(ScrmError):
    """The request contradicts the current state (already running, already cancelled): 409."""

    status = 409
    code = "conflict"


class Unavailable(ScrmError):
    """Something we depend on (WeCom) cannot answer right now; try again later: 503."""

    status = 503
    code = "unavailable"


class Unauthorized(ScrmError):
    """No valid sign-in or token: 401."""

    status = 401
    code = "unauthorized"


class Forbidden(ScrmError):
    """Signed in, but this role (or a missing CSRF token) may not do it: 403."""

    status = 403
    code = "forbidden"
