"""The floor under the control plane's CPU per ``POST /events``: what answering a small POST
costs a server with nothing of ours behind it, over the API's TLS, with 4 keep-alive clients.

    .venv/bin/python bench/http_floor.py [--requests 6000] [--clients 4]

Three servers, each in a process of its own, answer every request with a fixed ``202`` and a
small JSON body, and their CPU (user + system, from /proc) is divided by the requests:

- ``hypercorn``: the control plane's API server (``cp/http.py`` ``ApiServer``: hypercorn's
  HTTP/1.1 on our listener, TLS, ``Http1Only``) with a bare ASGI app;
- ``own, SSLStream``: a minimal HTTP/1.1 loop of ours (the head read to its blank line, the body
  to its ``Content-Length``, the answer in one write) on trio's ``SSLStream``;
- ``own, TLSStream``: the same loop on the agent channel's lean TLS stream
  (``cp/tls_stream.py``).

The difference between the first and the others is what hypercorn's per-request work costs
(its protocol objects, events and task per request): what serving the hot route with our own
framing would save, at most (issue 15: CPU per routed event <= 2.0 ms).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
from tests.bed.pki import TestPki

from transporter.config.values import Address
from transporter.cp.http import ApiServer, api_context
from transporter.cp.pki import write_serving
from transporter.cp.tls_stream import TLSStream

ANSWER_BODY = b'{"id":"01JBENCH0000000000000000000","state":"assigned"}\n'
ANSWER = (
    b"HTTP/1.1 202 \r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(ANSWER_BODY)).encode()
    + b"\r\n\r\n"
    + ANSWER_BODY
)
BODY = json.dumps(
    {
        "target_agent": "bench-1",
        "payload": {"manifests": ["apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"]},
    }
).encode()
HEAD_BYTES = 16 * 1024
SERVERS = ("hypercorn", "own-ssl", "own-lean")


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(ANSWER_BODY)).encode()))
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER_BODY})


async def own_loop(stream: trio.abc.Stream) -> None:
    """Requests framed by their ``Content-Length`` (all this benchmark sends), answered."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data or len(buffer) > HEAD_BYTES:
                return
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = await stream.receive_some(65536)
            if not data:
                return
            rest += data
        buffer = rest[length:]
        await stream.send_all(ANSWER)


async def serve(kind: str, cert: str, key: str, ready: Path) -> None:
    context = api_context(cert, key)
    if kind == "hypercorn":
        server = ApiServer(asgi, Address("127.0.0.1", 0), tls=context)
        async with trio.open_nursery() as nursery:
            [url] = await nursery.start(server.serve, trio.Event())
            await trio.Path(ready).write_text(url.rsplit(":", 1)[1])
        return

    async def connection(tcp: trio.SocketStream) -> None:
        stream: trio.abc.Stream
        if kind == "own-ssl":
            stream = trio.SSLStream(tcp, context, server_side=True, https_compatible=True)
        else:
            stream = TLSStream(tcp, context)
        try:
            await stream.do_handshake()
            await own_loop(stream)
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await trio.Path(ready).write_text(str(listeners[0].socket.getsockname()[1]))
    await trio.serve_listeners(connection, listeners)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, ca: str, requests: int, clients: int) -> None:
    context = ssl.create_default_context(cafile=ca)

    def client(count: int) -> None:
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
        headers = {"content-type": "application/json", "authorization": "Bearer x"}
        for _ in range(count):
            connection.request("POST", "/events", body=BODY, headers=headers)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 202, answer.status
        connection.close()

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(kind: str, folder: Path, pki: TestPki, requests: int, clients: int) -> float:
    ready = folder / f"{kind}.port"
    cert, key = write_serving(pki.authority, folder, ["localhost"])
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, str(cert), str(key), str(ready)]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit(f"{kind}: the server did not start")
            time.sleep(0.05)
        port = int(ready.read_text())
        load(port, str(pki.ca_cert), requests // 10, clients)  # warm-up
        before = cpu_seconds(child.pid)
        load(port, str(pki.ca_cert), requests, clients)
        return (cpu_seconds(child.pid) - before) / requests
    finally:
        child.terminate()
        child.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, cert, key, ready = args.serve
        trio.run(serve, kind, cert, key, Path(ready))
        return 0
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        pki = TestPki.create(folder / "pki")
        for kind in SERVERS:
            per = measure(kind, folder, pki, args.requests, args.clients)
            print(f"{kind:10} {per * 1e3:6.3f} ms of CPU per POST ({args.requests} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
