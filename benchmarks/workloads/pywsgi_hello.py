"""A hello-world WSGI app (13-byte body, Content-Length given) on ``evloop.pywsgi`` and
``gevent.pywsgi``, and a raw ASGI hello-world on uvicorn (uvloop + httptools) as the
"uvloop" impl; one server process each, driven by wrk (one thread, 50 keep-alive
connections): requests/s over 3 s after a 1 s warm-up. See ``_pywsgi.py``."""

from _pywsgi import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run()
