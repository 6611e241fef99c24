"""Bearer API-key authentication and role checks.

`Authorization: Bearer <key>`: 401 without a valid key, 403 for the wrong role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.deps import StoresDep
from app.problems import Forbidden, Unauthorized
from app.stores import Stores
from storage import api_keys
from storage.api_keys import ApiKey, Role
from storage.postgres import read_connection

Principal = ApiKey

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="polyshop"'}

# Declares the scheme in the OpenAPI document (operations needing a key get `security`,
# Swagger UI gets its Authorize button); errors stay ours (auto_error=False).
_BEARER = HTTPBearer(auto_error=False, description="an API key from `polyshop keys create`")


async def get_principal(
    request: Request,
    stores: StoresDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> Principal:
    return await authenticate(stores, request.headers.get("authorization"))


async def authenticate(stores: Stores, authorization: str | None) -> Principal:
    """The principal of an `Authorization` header value; Unauthorized without a valid
    key. A key not in the process's cache (valid lately, no revocation since) is looked
    up in Postgres (shared by `get_principal` and the thin order read)."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing bearer API key", headers=_CHALLENGE)
    key_hash = api_keys.hash_key(stores.settings.api_key_pepper.get_secret_value(), key.strip())
    principal = stores.api_keys.get(key_hash)  # valid lately, and no revocation since
    if principal is None:
        async with read_connection(stores.pg) as conn:
            principal = await api_keys.lookup_hash(conn, key_hash)
        if principal is not None:
            stores.api_keys.put(key_hash, principal)
    if principal is None:
        raise Unauthorized("invalid or revoked API key", headers=_CHALLENGE)
    return principal


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        principal: Annotated[Principal, Depends(get_principal)],
    ) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}")
        return principal

    return dependency


PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
WarehouseDep = Annotated[Principal, Depends(require_role("warehouse", "admin"))]
CustomerDep = Annotated[Principal, Depends(require_role("customer"))]
