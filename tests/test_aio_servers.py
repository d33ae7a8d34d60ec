"""Real asyncio servers and clients on evloop.aio, over loopback.

uvicorn (the ASGI server most asyncio web code runs under) with
``loop="evloop.aio:new_event_loop"`` — what ``uvicorn --loop evloop.aio:new_event_loop``
sets — serving a raw ASGI app with each of its HTTP implementations (httptools and h11),
requested by a real HTTP client (requests, from the test process); and the ``websockets``
package's server and client, both on evloop.aio. uvicorn runs in a child process: it installs
SIGINT/SIGTERM handlers and is stopped the way a person stops it, with SIGTERM.
aiohttp's server and client are in tests/test_aio.py.
"""
import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import evloop.aio

from _helpers import ROOT, _env

uvicorn = pytest.importorskip("uvicorn")   # a test extra: pip install -e '.[test]'
requests = pytest.importorskip("requests")
websockets = pytest.importorskip("websockets")

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning:evloop")


# ------------------------------------------------------------------------------------
# uvicorn

# The child: a raw ASGI app on uvicorn with evloop.aio as its loop. It binds the listening
# socket itself (port 0) and prints the port, then runs uvicorn.Server.run(), which makes
# the loop from config.loop (an import string: uvicorn 0.36+).
UVICORN_CHILD = r'''
import asyncio, hashlib, json, socket, sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    loop = asyncio.get_running_loop()
    path = scope["path"]
    if path == "/info":
        # which loop and which transports serve this request
        body = json.dumps({
            "loop": type(loop).__module__ + "." + type(loop).__qualname__,
            "transports": sorted({type(t).__module__ + "." + type(t).__qualname__
                                  for t in loop._transports.values()}),
            "http_version": scope["http_version"],
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        # a streaming response: chunked transfer encoding, one ASGI message per chunk
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(200):
            await send({"type": "http.response.body", "body": b"chunk %d;" % i,
                        "more_body": True})
            if i % 50 == 0:
                await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"end"})
    elif path == "/upload" and scope["method"] == "POST":
        # a request body in as many ASGI messages as the server cut it into
        digest = hashlib.sha256()
        size = parts = 0
        more = True
        while more:
            message = await receive()
            assert message["type"] == "http.request", message
            digest.update(message.get("body", b""))
            size += len(message.get("body", b""))
            parts += 1
            more = message.get("more_body", False)
        body = json.dumps({"size": size, "sha256": digest.hexdigest(),
                           "parts": parts}).encode()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/big":
        data = bytes(range(256)) * (4 * 1024 * 4)    # 4 MiB in one body message
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})

sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, loop="evloop.aio:new_event_loop", http=sys.argv[1],
                        lifespan="on", log_level="info", access_log=False)
uvicorn.Server(config).run(sockets=[sock])
'''


@pytest.fixture(params=["httptools", "h11"])
def uvicorn_server(request):
    http = request.param
    pytest.importorskip(http)
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", UVICORN_CHILD, http],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), (line, proc.communicate(timeout=30))
        base = f"http://127.0.0.1:{int(line)}"
        deadline = time.monotonic() + 30
        while True:   # uvicorn is up once it answers
            try:
                requests.get(base + "/nothing", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.communicate(timeout=30)
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        yield http, base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        request.node.uvicorn_output = (proc.returncode, out, err)


def test_uvicorn_serves_on_evloop_aio(uvicorn_server):
    http, base, proc = uvicorn_server
    with requests.Session() as session:    # keep-alive: one connection for all of these
        info = session.get(base + "/info", timeout=10).json()
        assert info["loop"] == "evloop.aio.Loop"
        # the accepted connection's transport is evloop's own (csrc/evloop_transport.c)
        assert info["transports"] == ["evloop.aio.StreamTransport"], info
        assert info["http_version"] == "1.1"

        r = session.get(base + "/stream", timeout=10, stream=True)
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        received = b"".join(r.iter_content(chunk_size=None))
        assert received == b"".join(b"chunk %d;" % i for i in range(200)) + b"end"

        for size in (0, 1, 100_000, 3 * 1024 * 1024 + 7):
            payload = os.urandom(size)
            r = session.post(base + "/upload", data=payload, timeout=30)
            assert r.status_code == 201
            got = r.json()
            assert got["size"] == size and got["sha256"] == hashlib.sha256(payload).hexdigest()
            if size > 1024 * 1024:
                assert got["parts"] > 1    # the body arrived in pieces, as it was read

        # a chunked request body (a generator: requests sends Transfer-Encoding: chunked)
        pieces = [os.urandom(10_000) for _ in range(20)]
        r = session.post(base + "/upload", data=iter(pieces), timeout=30)
        assert r.json()["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()

        r = session.get(base + "/big", timeout=30)
        assert r.content == bytes(range(256)) * (4 * 1024 * 4)
        assert session.get(base + "/missing", timeout=10).status_code == 404

    # many clients at once, each its own connection
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: requests.post(base + "/upload", data=b"x" * i,
                                                        timeout=30).json()["size"],
                                range(0, 64_000, 1000)))
    assert results == list(range(0, 64_000, 1000))

    # SIGTERM: uvicorn shuts down cleanly (lifespan shutdown, server closed, loop closed),
    # then restores the default handler and raises the signal again (uvicorn's
    # capture_signals), so the process ends killed by SIGTERM, as without evloop
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, out, err)
    assert "Finished server process" in err, err
    assert "Waiting for application shutdown." in err and "Application shutdown complete." in err
    assert "Traceback" not in err and "Exception" not in err, err


# ------------------------------------------------------------------------------------
# websockets (the package): server and client both on evloop.aio


def test_websockets_server_and_client():
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

    handler_saw = []

    async def handler(ws):
        path = ws.request.path
        if path == "/close4000":
            await ws.close(4000, "bye")
            return
        try:
            async for message in ws:
                await ws.send(message)     # echo, keeping text as text and bytes as bytes
        except ConnectionClosedError as exc:
            handler_saw.append(("error", exc.rcvd and exc.rcvd.code))
            return
        handler_saw.append(("ok", ws.close_code))

    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, evloop.aio.Loop)
        big = os.urandom(1024 * 1024)
        async with serve(handler, "127.0.0.1", 0, max_size=2 * 1024 * 1024) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}"
            async with connect(url + "/echo", max_size=2 * 1024 * 1024) as ws:
                assert type(ws.transport) is evloop.aio.StreamTransport, ws.transport
                await ws.send("héllo évloop")
                assert await ws.recv() == "héllo évloop"
                await ws.send(b"\x00\x01binary\xff")
                assert await ws.recv() == b"\x00\x01binary\xff"
                await ws.send(big)                       # a 1 MiB message, both ways
                echoed = await ws.recv()
                assert isinstance(echoed, bytes) and echoed == big
                # a fragmented message (an async iterable of frames)
                await ws.send(["part1-", "part2-", "part3"])
                assert await ws.recv() == "part1-part2-part3"
                # many small messages in flight at once
                for i in range(500):
                    await ws.send(f"m{i}")
                assert [await ws.recv() for _ in range(500)] == [f"m{i}" for i in range(500)]
                pong_waiter = await ws.ping(b"ping-data")
                assert (await asyncio.wait_for(pong_waiter, 10)) >= 0
            # the client closed with 1000: the server's handler ended normally
            assert ws.close_code == 1000
            for _ in range(100):
                if handler_saw:
                    break
                await asyncio.sleep(0.01)
            assert handler_saw == [("ok", 1000)]

            # the server closes with an application close code and reason
            async with connect(url + "/close4000") as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 4000 and info.value.rcvd.reason == "bye"

            # a message over the receiver's max_size: closed with 1009 (message too big)
            async with connect(url + "/echo", max_size=2 * 1024 * 1024) as ws:
                await ws.send(os.urandom(2 * 1024 * 1024 + 1))
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 1009

            # a normal close from the client with another code
            async with connect(url + "/echo") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
                await ws.close(1001, "going away")
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
                assert ws.close_code == 1001
        return "ok"

    assert evloop.aio.run(main()) == "ok"
