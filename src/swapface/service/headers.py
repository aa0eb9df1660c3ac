"""Security headers on every answer: no MIME sniffing, no framing, and a content policy per kind of answer.

API answers and results get a policy that runs nothing (``default-src 'none'; sandbox``): a result opened
in a browser cannot run script even if an upload was crafted to look like HTML. The web page gets a policy
that allows only its own origin. Nothing may frame the service (clickjacking).
"""

from __future__ import annotations

from typing import Any

PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
API_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
PAGE_PATHS = ("/", "/live")  # the web pages: the jobs page and the live view
DOCS_PATHS = ("/docs", "/redoc")  # interactive API docs load their own assets: framing is still refused


def _policy(path: str) -> str | None:
    if path in PAGE_PATHS:
        return PAGE_POLICY
    if path.startswith(DOCS_PATHS):
        return "frame-ancestors 'none'"
    return API_POLICY


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = _policy(scope.get("path", ""))

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer")]
                if policy is not None:
                    extra.append((b"content-security-policy", policy.encode()))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
