"""Faults of the machine, not of the request: a full disk, a database that does not answer, a bug.

Each becomes a JSON answer with a code (507 ``insufficient_storage`` for a full disk, 503 for an
unavailable database or storage, 500 ``internal`` for anything else) instead of Starlette's plain-text
500, and is logged through the redacting logger (the exception's type, never its paths).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from swapface.storage.space import is_disk_full

log = logging.getLogger("swapface.api")


def fault_answer(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) for an unexpected error."""
    if is_disk_full(exc):
        return 507, "insufficient_storage", "the service is out of disk space; try again later"
    if isinstance(exc, sa.exc.DBAPIError):
        return 503, "database_unavailable", "the job database is not available; try again later"
    if isinstance(exc, OSError):
        return 503, "storage_unavailable", "the service's storage is not available; try again later"
    return 500, "internal", "an internal error occurred"


def install_fault_handlers(app: FastAPI) -> None:
    """Answer machine faults as JSON problems with a code (and log them redacted)."""

    async def fault(request: Request, exc: Exception) -> JSONResponse:
        status, code, message = fault_answer(exc)
        log.error("request failed", exc_info=exc,
                  extra={"route": request.url.path, "method": request.method, "code": code})
        return JSONResponse({"detail": message, "code": code}, status)

    app.add_exception_handler(sa.exc.DBAPIError, fault)
    app.add_exception_handler(OSError, fault)
    app.add_exception_handler(Exception, fault)
