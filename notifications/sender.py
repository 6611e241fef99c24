"""SMTP through aiosmtplib: a few kept-open connections per process, reopened on error.

Errors are split in two: `Refused` (a 5xx for the recipient or the message: sending
again cannot help) and `Unavailable` (no server, a dropped connection, a 4xx: try
again later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

Security = Literal["none", "starttls", "tls"]

# 5xx answers about the session, not the message or the recipient: a new connection can
# succeed, so they are `Unavailable`, never a refusal (503 bad sequence of commands).
PROTOCOL_ERRORS = frozenset({503})


class Refused(Exception):
    """The server refused the recipient or the message permanently (5xx)."""


class Unavailable(Exception):
    """The server could not be reached or answered a temporary error (4xx)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security = "none"
    username: str = ""
    password: str = ""
    timeout_s: float = 10.0


class SmtpSender:
    def __init__(self, config: SmtpConfig, connections: int = 4) -> None:
        self.config = config
        self.connections = connections
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(self._client())

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            username=c.username or None,
            password=c.password or None,
            timeout=c.timeout_s,
        )

    async def send(self, message: EmailMessage) -> None:
        client = await self._idle.get()
        try:
            if not client.is_connected:
                await client.connect()
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _drop(client)
            if all(r.code >= 500 for r in exc.recipients):
                raise Refused(
                    "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
                ) from exc
            raise Unavailable(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            await _drop(client)
            if exc.code >= 500 and exc.code not in PROTOCOL_ERRORS:
                raise Refused(f"{exc.code} {exc.message}") from exc
            raise Unavailable(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _drop(client)
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            # Cancelled mid-transaction (the handler's broker channel was lost): the
            # server's state is unknown, so the connection must not be reused. Found by
            # the broker-kill test: the next MAIL on it got "503 Bad sequence".
            client.close()
            raise
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            await _drop(self._idle.get_nowait())


async def _drop(client: aiosmtplib.SMTP) -> None:
    """Forget a connection in an unknown state; the next send opens a new one."""
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
