"""The server process of the pywsgi_hello workloads: ``python _pywsgi_server.py IMPL FD``
serves a 13-byte "hello world" on the listening socket FD (inherited) until SIGTERM.

evloop: ``evloop.pywsgi.WSGIServer``; gevent: ``gevent.pywsgi.WSGIServer`` (the peers venv,
GEVENT_LOOP=libev-cext); uvloop: uvicorn with ``loop="uvloop"``, ``http="httptools"`` and a
raw ASGI application (no framework). No access log on any of them.
"""

import signal
import socket
import sys

BODY = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def wsgi_app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


async def asgi_app(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def main():
    impl, fd = sys.argv[1], int(sys.argv[2])
    if impl == "uvloop":
        import asyncio

        import uvicorn
        import uvloop

        # uvicorn's own fd= option takes the fd for an AF_UNIX socket, so the loop would
        # not set TCP_NODELAY on the connections (Nagle + delayed ACK: ~1 k req/s); the
        # socket object made here has the listener's real family
        config = uvicorn.Config(asgi_app, loop="uvloop", http="httptools", lifespan="off",
                                access_log=False, log_level="warning")
        server = uvicorn.Server(config)
        listener = socket.socket(fileno=fd)
        loop = uvloop.new_event_loop()
        if type(loop) is not uvloop.Loop:
            raise SystemExit("not a uvloop loop")
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[listener]))
        return
    if impl == "evloop":
        from evloop import pywsgi
        from evloop import socket as socket_module
        import evloop as api
    elif impl == "gevent":
        import gevent.core
        from gevent import pywsgi
        from gevent import socket as socket_module
        import gevent as api
        if type(gevent.get_hub().loop) is not gevent.core.loop:
            raise SystemExit("gevent is not on its libev-cext loop")
    else:
        raise SystemExit(f"unknown impl {impl!r}")
    listener = socket_module.socket(fileno=fd)
    server = pywsgi.WSGIServer(listener, wsgi_app, log=None)
    api.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
