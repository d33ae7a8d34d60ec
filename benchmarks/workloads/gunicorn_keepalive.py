"""gunicorn serving a 13-byte "hello world" WSGI app with one worker of the impl's class
(``-k gevent`` / ``-k evloop.integrations.gunicorn.Worker``), driven by wrk (one thread,
50 keep-alive connections, each sending its next request when the answer came): requests/s
over 3 s after a 1 s warm-up. Measures gunicorn's own HTTP parsing and response code
running on each loop (a greenlet per connection, cooperative recv/sendall, the keep-alive
Timeout per request), which dominates; see ``_gunicorn.py``."""

from _gunicorn import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run()
