"""Browser sessions: a random token in an HttpOnly cookie, the session itself in Redis.

A person signs in with an API key once; the key is checked and forgotten (only its id
is kept), so no page and no script ever sees it again. Each request re-checks that the
key is not revoked. A customer may instead sign in with e-mail and password (argon2id,
kit/passwords.py): the session keeps a tag of the password hash, and ends when the
password changes. Sessions expire after `IDLE_S` without a request (sliding) and
after `ABSOLUTE_S` in any case.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from kit import passwords
from storage import api_keys, customers
from storage.api_keys import Role
from storage.postgres import read_connection
from web.backend import WebStores

COOKIE = "polyshop_session"
IDLE_S = 2 * 3600
ABSOLUTE_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    key_id: int | None  # None: opened with the customer's password
    role: Role
    customer_id: int | None
    csrf: str
    started: float
    password_tag: str | None = None


def _redis_key(prefix: str, token: str) -> str:
    # only a hash of the token is stored: a Redis dump opens no session
    return f"{prefix}web:session:{hashlib.sha256(token.encode()).hexdigest()}"


async def sign_in(stores: WebStores, api_key: str) -> tuple[str, Session] | None:
    """A new session for a valid key (None for an unknown or revoked one)."""
    async with read_connection(stores.pg) as conn:
        principal = await api_keys.lookup(
            conn, pepper=stores.settings.api_key_pepper.get_secret_value(), key=api_key
        )
    if principal is None:
        return None
    return await _open(stores, principal.id, principal.role, principal.customer_id, None)


async def sign_in_password(
    stores: WebStores, email: str, password: str
) -> tuple[str, Session] | None:
    """A customer session for a matching e-mail and password (None otherwise: the same
    answer, and the same cost, whether or not the e-mail has an account)."""
    async with read_connection(stores.pg) as conn:
        found = await customers.credentials(conn, email)
    stored = found[1] if found else None
    if not await passwords.verify(stored, password) or found is None or stored is None:
        return None
    return await _open(stores, None, "customer", found[0], passwords.tag(stored))


async def _open(
    stores: WebStores,
    key_id: int | None,
    role: Role,
    customer_id: int | None,
    password_tag: str | None,
) -> tuple[str, Session]:
    token = secrets.token_urlsafe(32)
    session = Session(
        key_id=key_id,
        role=role,
        customer_id=customer_id,
        csrf=secrets.token_urlsafe(32),
        started=time.time(),
        password_tag=password_tag,
    )
    await stores.redis.set(
        _redis_key(stores.settings.redis_prefix, token), json.dumps(asdict(session)), ex=IDLE_S
    )
    return token, session


async def load(stores: WebStores, token: str | None) -> Session | None:
    if not token or len(token) > 100:
        return None
    redis: Redis = stores.redis
    key = _redis_key(stores.settings.redis_prefix, token)
    raw = await redis.get(key)
    if raw is None:
        return None
    session = Session(**json.loads(raw))
    if time.time() - session.started > ABSOLUTE_S or not await _key_live(stores, session):
        await redis.delete(key)
        return None
    await redis.expire(key, IDLE_S)
    return session


async def _key_live(stores: WebStores, session: Session) -> bool:
    """The key is not revoked; for a password session, the password is unchanged."""
    async with read_connection(stores.pg) as conn:
        if session.key_id is None:
            if session.customer_id is None or session.password_tag is None:
                return False
            stored = await customers.password_hash(conn, session.customer_id)
            return stored is not None and passwords.tag(stored) == session.password_tag
        cur = await conn.execute(
            "SELECT 1 FROM api_keys WHERE id = %s AND revoked_at IS NULL", (session.key_id,)
        )
        return await cur.fetchone() is not None


async def sign_out(stores: WebStores, token: str | None) -> None:
    if token:
        await stores.redis.delete(_redis_key(stores.settings.redis_prefix, token))
