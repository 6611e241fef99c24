"""Customer passwords: argon2id hashes (argon2-cffi, its RFC 9106 low-memory profile).

`verify` costs the same whether or not the customer exists (`verify(None, ...)` checks
against a fixed dummy hash), so timing tells nobody which e-mails have an account.
The hashing runs in a thread: it is CPU work of tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

MIN_LENGTH = 8
MAX_LENGTH = 200  # argon2 takes any length; a cap keeps a megabyte "password" out

_HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
_DUMMY = _HASHER.hash("not a password of anyone")

DEMO_PASSWORD = "polyshop-demo"  # the seeded sample customers' (docs/web.md); never in production


def check_new(password: str) -> str | None:
    """Why a new password is refused (None: fine)."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"{MIN_LENGTH} to {MAX_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


async def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored` (None: no such account, still costs a check)."""
    if len(password) > MAX_LENGTH:
        return False
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def tag(stored: str) -> str:
    """A short fingerprint of a stored hash: a session opened with a password keeps it,
    and ends when the password changes (the tag no longer matches)."""
    return hashlib.sha256(stored.encode()).hexdigest()[:16]
