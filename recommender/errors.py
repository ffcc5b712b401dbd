"""The domain's error family; the web layer maps each to a status code in one place."""

from __future__ import annotations


class GoodcryError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(GoodcryError):
    code = "not_found"


class InvalidInput(GoodcryError):
    code = "invalid"


class Conflict(GoodcryError):
    code = "conflict"


class Unauthorised(GoodcryError):
    code = "unauthorized"
