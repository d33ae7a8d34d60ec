"""gunicorn_keepalive with ``Connection: close`` on every request: each request is a new
TCP connection, so the accept path (the listener's watcher, a Pool slot, a greenlet per
connection), connection setup and teardown count as much as the HTTP handling; see
``_gunicorn.py``."""

from _gunicorn import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run(headers=("Connection: close",))
