"""evloop.integrations.psycopg: PostgreSQL drivers that block only the calling greenlet.

Why it exists: psycopg2's C module talks to libpq without Python's socket module, so
monkey-patching cannot reach it; it offers a hook instead (``set_wait_callback``), which
psycogreen fills for gevent and eventlet. ``make_psycopg_green()`` fills it for evloop:
psycopg2 then runs every query in libpq's non-blocking mode and calls
``evloop_wait_callback``, which waits for the connection's socket through the hub.

It is not switched on by ``evloop.monkey.patch_all()``: with a wait callback psycopg2
refuses COPY (``copy_from``/``copy_to``/``copy_expert`` raise ``ProgrammingError``), a
change a program must choose.

psycopg 3 needs nothing from here: under ``evloop.monkey.patch_all()`` it waits through the
patched ``select`` module without any setting (evloop._library_checks; docs/gevent.md,
"Libraries that check for gevent").

What it must not do: import psycopg2 before ``make_psycopg_green()`` is called, or
swallow an error: a failed ``poll()`` raises psycopg2's own exception, a closed connection
psycopg2's ``OperationalError``. Interrupting a wait (``Timeout``, ``kill``) propagates,
and psycopg2 then closes the connection (the server side of a query cut mid-way cannot be
recovered); ``KeyboardInterrupt`` cancels the running query (``conn.cancel()``) and waits
for the server's answer, as psycopg2's own ``extras.wait_select`` does.
"""
from typing import Any, Optional

from evloop.socket import wait_read, wait_write

__all__ = ["make_psycopg_green", "evloop_wait_callback"]


def make_psycopg_green() -> None:
    """Make psycopg2 cooperative: install ``evloop_wait_callback`` as its wait callback
    (process-wide, for every connection made afterwards)."""
    import psycopg2.extensions
    psycopg2.extensions.set_wait_callback(evloop_wait_callback)


def evloop_wait_callback(conn: Any, timeout: Optional[float] = None) -> None:
    """psycopg2's wait callback: drive ``conn.poll()`` until the operation is done,
    waiting for the socket through the hub whenever libpq would block."""
    from psycopg2 import OperationalError
    from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE
    while True:
        try:
            state = conn.poll()
            if state == POLL_OK:
                return
            if state == POLL_READ:
                wait_read(conn.fileno(), timeout)
            elif state == POLL_WRITE:
                wait_write(conn.fileno(), timeout)
            else:
                raise OperationalError(f"bad result from connection.poll(): {state!r}")
        except KeyboardInterrupt:
            conn.cancel()
            # the server now ends the query with an error, which poll() raises
            continue
