"""Failed sign-ins, counted in Redis: after `PER_ACCOUNT` failures for one e-mail or
`PER_ADDRESS` from one client address (`kit/client_address.py`: behind a trusted proxy,
the client it forwarded, so shoppers behind nginx are not counted together) within
`WINDOW_S`, sign-in refuses (429) without checking anything until the window ends.
Counted for unknown e-mails too (no hint which exist); a success clears the e-mail's
count. Names are hashes: Redis keeps no e-mail.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

WINDOW_S = 15 * 60
PER_ACCOUNT = 5
PER_ADDRESS = 30


def _keys(prefix: str, email: str | None, address: str) -> list[tuple[str, int]]:
    def name(kind: str, value: str) -> str:
        return f"{prefix}web:signin:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"

    keys = [(name("a", address), PER_ADDRESS)]
    if email:
        keys.append((name("e", email.strip().lower()), PER_ACCOUNT))
    return keys


async def retry_after(redis: Redis, prefix: str, email: str | None, address: str) -> int:
    """Seconds until sign-in may be tried again (0: now)."""
    wait = 0
    for key, limit in _keys(prefix, email, address):
        count = await redis.get(key)
        if count is not None and int(count) >= limit:
            wait = max(wait, int(await redis.ttl(key)), 1)
    return wait


async def failed(redis: Redis, prefix: str, email: str | None, address: str) -> None:
    for key, _ in _keys(prefix, email, address):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_S, nx=True)
            await pipe.execute()


async def succeeded(redis: Redis, prefix: str, email: str) -> None:
    await redis.delete(_keys(prefix, email, "")[1][0])
