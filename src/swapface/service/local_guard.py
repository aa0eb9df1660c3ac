"""Keyless local mode serves this machine's own callers only: no other site's page, no rebound DNS name.

Without API keys a loopback caller is trusted, but a browser on this machine would also carry requests
from any web page: a cross-site form or fetch (``Origin`` of another site, ``Sec-Fetch-Site: cross-site``)
and, through DNS rebinding, a hostile name that resolves to 127.0.0.1 (its ``Host`` is that name). While
keyless, the ``Host`` must name this machine (localhost, a loopback address, or the address the server is
bound to) and any ``Origin`` must be one of those hosts too.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import Request

from swapface.errors import InputError

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class CrossSiteRefused(InputError):
    """A keyless request that could come from another site (403)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code)


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header or an origin's netloc (ports and IPv6 brackets removed)."""
    try:
        return (urlsplit("//" + value).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _is_local_name(host: str, bound: str | None) -> bool:
    if host in LOCAL_NAMES or host.endswith(".localhost") or (bound and host == bound.lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_local_request(request: Request) -> None:
    """Refuse a keyless request whose Host or Origin is not this machine (DNS rebinding, cross-site pages)."""
    bound = request.scope.get("server", (None, None))[0] if request.scope.get("server") else None
    host = _host_name(request.headers.get("host", ""))
    if not _is_local_name(host, bound):
        raise CrossSiteRefused("without API keys this service answers only requests addressed to localhost",
                               code="bad_host")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        if not _is_local_name(_host_name(urlsplit(origin).netloc), bound):
            raise CrossSiteRefused("cross-site requests are refused without API keys", code="cross_site")
    elif origin == "null" or request.headers.get("sec-fetch-site") == "cross-site":
        raise CrossSiteRefused("cross-site requests are refused without API keys", code="cross_site")
