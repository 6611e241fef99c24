"""The client's address, as every per-address limit keys it (the API's rate limit, the
sign-in throttle): the peer of the connection, or, when the peer is one of the trusted
proxies (`Settings.trusted_proxies`: nginx), the client that proxy names in
X-Forwarded-For. The rewrite happens once, outermost, in uvicorn's
ProxyHeadersMiddleware over that list (`app/middleware/__init__.py`); a header from any
other peer is ignored. So nothing else parses X-Forwarded-For."""

from __future__ import annotations

from starlette.types import Scope

UNKNOWN = "unknown"  # no peer address (a Unix socket, a test transport without one)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN
