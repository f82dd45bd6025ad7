"""Who may open the inspector: the holder of its own token, never a tenant's.

A browser signs in once with the token (a form) and gets a cookie; scripts may send the
token as ``Authorization: Bearer``. The cookie holds an HMAC of the token, not the token,
and is ``HttpOnly`` and ``SameSite=Strict`` (another site cannot make the browser send it,
so a page elsewhere cannot post queries through a signed-in operator). Without a token
the inspector is open: ``dobox serve`` allows that only where the whole server is, on
127.0.0.1 without tenant tokens (see :func:`check_policy`).
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "dobox_inspector"
PREFIX = "/_dobox/"


def check_policy(token: str | None, tenant_tokens: bool) -> None:
    """Raises: ValueError, for an inspector without a token on a server with tenant tokens
    (such a server may listen beyond loopback, and the inspector shows every tenant)."""
    if token is None and tenant_tokens:
        raise ValueError("the inspector shows every tenant's data: on a server with tenant "
                         "tokens it needs its own token (--inspector-token)")
    if token is not None and len(token) < 16:
        raise ValueError("the inspector's token must be at least 16 characters")


class Access:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._session = (None if token is None else
                         hmac.new(token.encode(), b"dobox inspector session",
                                  hashlib.sha256).hexdigest())

    @property
    def open(self) -> bool:
        """No token: everyone who can reach the server may look."""
        return self.token is None

    def allows(self, bearer: bytes | None, cookies: dict[str, str]) -> bool:
        if self.token is None or self._session is None:
            return True
        if bearer is not None and hmac.compare_digest(bearer, self.token.encode()):
            return True
        session = cookies.get(COOKIE)
        return session is not None and hmac.compare_digest(session.encode(),
                                                           self._session.encode())

    def signs_in(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(),
                                                              self.token.encode())

    def cookie(self, *, secure: bool) -> bytes:
        """The ``Set-Cookie`` value for a signed-in browser."""
        assert self._session is not None
        flags = "; Secure" if secure else ""
        return (f"{COOKIE}={self._session}; Path={PREFIX}; HttpOnly; SameSite=Strict"
                f"{flags}").encode()

    @staticmethod
    def cleared_cookie() -> bytes:
        return f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0".encode()


def parse_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (the last of a repeated name wins)."""
    cookies: dict[str, str] = {}
    if header is None:
        return cookies
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            cookies[name] = value
    return cookies
