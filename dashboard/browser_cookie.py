"""The class server's browser cookie: a random 128-bit token that says which browser is which.

Streamlit scripts cannot set cookies (`st.context.cookies` is read-only), so the class server's entry
point (`classroom.py`, an `st.App`) puts this ASGI middleware in front of Streamlit. On any HTTP request
without a well-formed token it adds a Set-Cookie with a new one: HttpOnly (no script on the page can read
it), SameSite=Strict (no other site's page sends it), Secure over HTTPS, path /. The browser then sends
it with the WebSocket that carries the session, where `dashboard.identity` reads it. The token itself is
never stored: the roster keeps its SHA-256 (tlcore.classroom).
"""

from __future__ import annotations

import re
import secrets
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

from tlcore.classroom import COOKIE_NAME

if TYPE_CHECKING:  # the ASGI types classroom.py's Starlette app passes
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_AGE_S = 14 * 24 * 3600  # a fortnight of lessons on the same laptop
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16): 128 bits


def new_token() -> str:
    return secrets.token_urlsafe(16)


def well_formed(token: str | None) -> bool:
    return bool(token and _TOKEN.match(token))


def cookie_token(header: str) -> str | None:
    """The lab's token in a Cookie header, if one is there."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed header from a browser is no token, not a crash
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None else None


def set_cookie_header(token: str, secure: bool) -> bytes:
    parts = [f"{COOKIE_NAME}={token}", "Path=/", f"Max-Age={MAX_AGE_S}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode()


class BrowserCookieMiddleware:
    """Gives every browser that has none the lab's token cookie (pure ASGI: WebSockets pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if well_formed(cookie_token(headers.get(b"cookie", b"").decode("latin-1"))):
            await self.app(scope, receive, send)
            return
        cookie = set_cookie_header(new_token(), secure=scope.get("scheme") == "https")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
