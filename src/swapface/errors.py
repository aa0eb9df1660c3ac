"""The error family every swapface layer raises: callers map them to exit codes and HTTP statuses."""

from __future__ import annotations

from typing import Any


class SwapfaceError(Exception):
    """Base of every error swapface raises on purpose; its message is fit for a user."""

    code: str = "internal"

    def __reduce__(self) -> Any:
        """Keep the code when the error crosses a process boundary (executor workers, Ray tasks)."""
        if type(self).__init__ is SwapfaceError.__init__:
            return super().__reduce__()
        return type(self), (str(self), self.code)


class InputError(SwapfaceError):
    """The caller's input is wrong (unreadable file, no face in the source, bad option): CLI exit 2, HTTP 4xx."""

    code = "bad_input"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ModelError(SwapfaceError):
    """A model file is missing, corrupt or does not match its contract."""

    code = "model_error"


class JobError(SwapfaceError):
    """A job cannot proceed (store, storage or worker failure); the message says what and what to do."""

    code = "job_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
