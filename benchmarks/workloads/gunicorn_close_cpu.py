"""gunicorn_close (a new connection per request), measured per CPU second of the worker
process: requests / (user + system CPU time the single worker used during wrk's timed
run); see ``gunicorn_keepalive_cpu`` and ``_gunicorn.py``."""

from _gunicorn import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run(headers=("Connection: close",), metric="cpu")
