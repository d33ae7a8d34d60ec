"""gunicorn_keepalive, measured per CPU second of the worker process instead of per wall
second: requests / (user + system CPU time the single worker used during wrk's timed
run), read from /proc. On a machine shared with other work, the worker's CPU cost per
request moves far less than its throughput does; see ``_gunicorn.py``."""

from _gunicorn import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run(metric="cpu")
