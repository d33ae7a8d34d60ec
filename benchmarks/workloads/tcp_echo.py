"""TCP echo server throughput: 32 concurrent connections over 127.0.0.1, each sending a
1 KiB message and waiting for its echo before sending the next, driven by a C load
generator (``loadgen/echo_client.c``: one thread, epoll; built with ``cc -O2`` into
``.build/`` at first use) started by the workload as a child process.

The server runs in the workload's process: evloop and gevent a ``StreamServer`` whose
handler loops ``recv(65536)`` / ``sendall`` (TCP_NODELAY set on each connection, as asyncio
and uvloop transports do by default); asyncio and uvloop an ``asyncio.Protocol`` whose
``data_received`` calls ``transport.write``. The client counts echoed messages for 2 s after
a 0.3 s warm-up and reports messages/s, which is the op rate here. It also says on stderr
when its counted part begins (``mark``): the workload samples its own CPU time
(``time.process_time``, the server's) from then until the client exits, so that
``run.py --metric cpu`` gives messages per CPU second of the server, which other load on
the machine disturbs far less than the rate. Run by hand, the workload prints the client's
CPU use on stderr: well under 100% means the client is not the limit.
"""

import resource
import subprocess
import sys
import time

from _common import HUB_IMPLS, loadgen_command, loadgen_result, measured_cpu, run_io

IMPLS = HUB_IMPLS
CONNS, MSGSIZE, WARMUP, DURATION = 32, 1024, 0.3, 2.0


def start_client(port):
    cmd = loadgen_command("echo_client", "127.0.0.1", port, CONNS, MSGSIZE, WARMUP, DURATION,
                          "mark")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, before


def client_result(proc, before, stdout, stderr):
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"echo_client CPU: {cpu / (WARMUP + DURATION):.0%} of its run", file=sys.stderr)
    return loadgen_result(proc.returncode, stdout, stderr)


def green(api):
    import socket

    def handle(conn, address):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv, sendall = conn.recv, conn.sendall
        try:
            while True:
                data = recv(65536)
                if not data:
                    break
                sendall(data)
        except ConnectionResetError:  # the client exits with echoes in flight
            pass
        conn.close()

    server = api.server.StreamServer(("127.0.0.1", 0), handle)
    server.start()
    loadgen_command("echo_client")  # compile now if needed, not while the server waits
    proc, before = start_client(server.server_port)
    api.socket.wait_read(proc.stderr.fileno())  # "counting": the counted part begins
    marked = proc.stderr.readline() == "counting\n"
    cpu = time.process_time()
    api.socket.wait_read(proc.stdout.fileno())  # the client prints once, when done
    cpu = time.process_time() - cpu
    stdout, stderr = proc.communicate()
    server.stop()
    if marked:
        measured_cpu(cpu)
    return client_result(proc, before, stdout, stderr)


async def aio(asyncio):
    loop = asyncio.get_running_loop()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.write = transport.write

        def data_received(self, data):
            self.write(data)

    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loadgen_command("echo_client")
    proc, before = start_client(port)
    marked = await loop.run_in_executor(None, proc.stderr.readline) == "counting\n"
    cpu = time.process_time()  # the executor's thread only waits from here on
    stdout, stderr = await loop.run_in_executor(None, proc.communicate)
    cpu = time.process_time() - cpu
    server.close()
    if marked:
        measured_cpu(cpu)
    return client_result(proc, before, stdout, stderr)


if __name__ == "__main__":
    run_io(green, aio, submodules=("socket", "server"))
