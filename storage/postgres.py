"""PostgreSQL connection pool factory and health probe."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

# What a Postgres outage looks like to a caller: no pooled connection in time, or the
# server gone mid-query. Background jobs catch these to wait quietly for its return.
POSTGRES_DOWN: tuple[type[Exception], ...] = (PoolTimeout, psycopg.OperationalError)


# A checkout checks the connection (an empty query, one round trip) so that one left
# broken by a server restart is replaced instead of failing a request. Like HikariCP's
# aliveBypassWindowMs (500 ms), the check is skipped for a connection returned to the
# pool moments ago: it was working then, and a restart takes longer than that. Under
# load almost every checkout is such a connection; the image upload profile showed the
# check as one of its eleven round trips to Postgres.
CHECK_BYPASS_S = 0.5
_returned_at: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()


async def _note_return(conn: AsyncConnection[Any]) -> None:
    _returned_at[conn] = time.monotonic()


async def _check_unless_just_used(conn: AsyncConnection[Any]) -> None:
    returned = _returned_at.get(conn)
    if returned is not None and time.monotonic() - returned < CHECK_BYPASS_S:
        return
    await AsyncConnectionPool.check_connection(conn)


# With Postgres unreachable, a checkout used to wait the pool's whole timeout (5 s) before
# its 503, and requests piled up behind the load balancer meanwhile. The pool keeps
# trying to connect in the background (`reconnect_timeout=0`); while its latest attempt
# failed less than this long ago and it has no idle connection, a checkout fails at
# once instead. A request after the window waits as before (and its checkout makes the
# pool try again), so a server that came back is found within about this long.
# Setting `database_fail_fast_s`; 0 turns it off.
FAIL_FAST_WINDOW_S = 2.0


class ServerHealth:
    """What the pool's own connection attempts last said about the server."""

    def __init__(self, window_s: float = FAIL_FAST_WINDOW_S) -> None:
        self.window_s = window_s
        self.failed_at: float | None = None  # monotonic; None after a success

    def attempt_failed(self) -> None:
        self.failed_at = time.monotonic()

    def attempt_succeeded(self) -> None:
        self.failed_at = None

    def known_down(self) -> bool:
        failed = self.failed_at
        return failed is not None and time.monotonic() - failed < self.window_s


def _reporting_to(health: ServerHealth) -> type[AsyncConnection[dict[str, Any]]]:
    """A connection class whose `connect` tells `health` how it went."""

    class ReportingConnection(AsyncConnection[dict[str, Any]]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                conn = await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError:
                health.attempt_failed()
                raise
            health.attempt_succeeded()
            return conn

    return ReportingConnection


class Pool(AsyncConnectionPool[AsyncConnection[dict[str, Any]]]):
    """The pool, failing a checkout at once while the server is known to be down."""

    def __init__(self, *args: Any, health: ServerHealth, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health = health

    async def getconn(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (the pool's own signature)
    ) -> AsyncConnection[dict[str, Any]]:
        if self.health.known_down() and self.get_stats().get("pool_available", 0) == 0:
            raise PoolTimeout("postgres is unreachable: the pool's last connection attempt failed")
        return await super().getconn(timeout)


def connect_kwargs(
    *, schema: str, application_name: str, statement_timeout_ms: int
) -> dict[str, Any]:
    """Connection options shared by the pool and one-off connections (migrations, CLI)."""
    return {
        "application_name": application_name,
        "options": f"-c search_path={schema},public -c statement_timeout={statement_timeout_ms}",
        # Client-side bounds: libpq waits forever by default, and a vanished host would
        # otherwise hold a query (or LISTEN) until the kernel's TCP timeout.
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 15_000,
    }


async def create_pool(
    url: str,
    *,
    schema: str = "public",
    application_name: str = "polyshop",
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout_ms: int = 15_000,
    timeout_s: float = 5.0,
    fail_fast_s: float = FAIL_FAST_WINDOW_S,
) -> Pool:
    """Open a pool without waiting for the server, so the API can start (and report
    not-ready) while Postgres is down. A checkout waits at most `timeout_s`, and fails
    at once for `fail_fast_s` after a failed connection attempt (see ServerHealth)."""
    health = ServerHealth(fail_fast_s)
    pool = Pool(
        url,
        health=health,
        min_size=min_size,
        max_size=max_size,
        kwargs={
            **connect_kwargs(
                schema=schema,
                application_name=application_name,
                statement_timeout_ms=statement_timeout_ms,
            ),
            "row_factory": dict_row,
        },
        connection_class=_reporting_to(health),
        open=False,
        timeout=timeout_s,
        reconnect_timeout=0,  # keep retrying in the background forever
        check=_check_unless_just_used,
        reset=_note_return,
    )
    await pool.open(wait=False)
    return pool


async def ping(pool: AsyncConnectionPool[AsyncConnection[dict[str, Any]]]) -> None:
    async with pool.connection(timeout=2.0) as conn:
        await conn.execute("SELECT 1")


@contextlib.asynccontextmanager
async def read_connection(
    pool: AsyncConnectionPool[AsyncConnection[dict[str, Any]]],
) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
    """A pooled connection in autocommit mode, for a read of one statement: without it
    psycopg wraps the statement in BEGIN ... COMMIT, two more round trips (the API key
    lookup of every authenticated request was three round trips for one SELECT). Do
    not write through it; use `pool.connection()` and `conn.transaction()` for that."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)  # idle connection: no round trip
        try:
            yield conn
        finally:
            # A broken connection cannot be switched back; the pool discards it anyway.
            with contextlib.suppress(psycopg.Error):
                await conn.set_autocommit(False)
