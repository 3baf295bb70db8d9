"""The access token of a dashboard bound to an address other than loopback.

A request carries it as ``?token=T`` on any URL (which also sets the cookie, so the page's own
requests carry it), as the cookie ``runhistory_sql_token``, or as the header
``Authorization: token T``; without it the answer is 403. Tokens are compared in constant time.
"""
from __future__ import annotations

import ipaddress
import secrets
from typing import Any

COOKIE = "runhistory_sql_token"


def new_token() -> str:
    """A fresh random token (as Jupyter prints one in its URL)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def presented(scope_query: dict[str, str], cookies: dict[str, str], headers: Any) -> str | None:
    """The token a request presents: the query's, the header's or the cookie's."""
    if "token" in scope_query:
        return scope_query["token"]
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "token" and value:
        return value.strip()
    return cookies.get(COOKIE)


def accepted(token: str | None, given: str | None) -> bool:
    """Whether ``given`` matches ``token`` (``None``: no token needed)."""
    return token is None or (given is not None and secrets.compare_digest(token.encode(), given.encode()))
