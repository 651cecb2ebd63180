"""The floor under an idle agent's cost: the control plane's CPU to read one heartbeat frame
over mutual TLS, by read path, with nothing else of ours on the connection.

    .venv/bin/python bench/heartbeat_floor.py [--connections 2000] [--every 2] [--rest 10]

A trio server holds ``--connections`` mutual-TLS connections from two client processes, each
sending one heartbeat frame (an unsolicited WebSocket pong, 6 bytes, as agents of protocol 4
do) every ``--every`` seconds, spread. The server reads them with:

- ``trio-sslstream``: trio's ``SSLStream.receive_some`` alone (no WebSocket at all);
- ``channel``: the agent channel's own path, :class:`transporter.cp.tls_stream.TLSStream` and
  :class:`transporter.cp.framing.Socket` (frames decoded, the heartbeat recognised);
- ``floor``: wait for the socket, ``recv``, decrypt with ``ssl.SSLObject``: nothing to cut.

It prints the frames read per second and the server's CPU per frame. 10,000 agents with a
heartbeat every 10 s are 1,000 frames a second: the CPU per frame in ms is then the share of a
core, in tenths (issue 14's target at rest is <= 10 %).
"""

from __future__ import annotations

import argparse
import os
import random
import ssl
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.pki import TestPki

from transporter.cp.framing import Socket
from transporter.cp.pki import write_serving
from transporter.cp.tls import server_context
from transporter.cp.tls_stream import TLSStream

BEAT = bytes([0x8A, 0x80, 1, 2, 3, 4])
"""An unsolicited pong, masked, empty: a protocol-4 agent's heartbeat."""
MODES = ("trio-sslstream", "channel", "floor")
CLIENT_PROCESSES = 2


async def clients(port: int, count: int, bundle: Path, every: float) -> None:
    """The other process: ``count`` connections, each a heartbeat every ``every`` s."""
    from transporter.agent.bundle import load_bundle

    context = load_bundle(bundle).ssl_context()

    async def one() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tls = trio.SSLStream(stream, context, server_hostname="127.0.0.1")
        await tls.do_handshake()
        await trio.sleep(random.uniform(0, every))
        while True:
            await tls.send_all(BEAT)
            await trio.sleep(every)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
            await trio.sleep(0.002)  # not a handshake storm: that is bench/scale.py's


class Server:
    def __init__(self, mode: str, count: int, context: ssl.SSLContext) -> None:
        self.mode, self.count, self.context = mode, count, context
        self.ready = 0
        self.everyone = trio.Event()
        self.frames = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, Exception):
            return  # the clients are killed at the end

    async def _serve(self, stream: trio.SocketStream) -> None:
        if self.mode == "trio-sslstream":
            tls = trio.SSLStream(stream, self.context, server_side=True, https_compatible=True)
            await tls.do_handshake()
            self._one_more()
            while await tls.receive_some(65536):
                self.frames += 1
        lean = TLSStream(stream, self.context)
        await lean.do_handshake()
        self._one_more()
        if self.mode == "channel":
            ws = Socket(lean, max_message_bytes=1 << 20)
            while True:
                await ws.receive()
                self.frames += 1
        tls_object, incoming, fd = lean._tls, lean._incoming, lean._fd
        while True:
            await trio.lowlevel.wait_readable(fd)
            incoming.write(os.read(fd, 65536))
            try:
                while tls_object.read(65536):
                    self.frames += 1
            except ssl.SSLWantReadError:
                pass

    def _one_more(self) -> None:
        self.ready += 1
        if self.ready == self.count:
            self.everyone.set()


async def measure(
    mode: str, args: argparse.Namespace, context: ssl.SSLContext, bundle: Path
) -> str:
    server = Server(mode, args.connections, context)
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1", backlog=4096)
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        each = args.connections // CLIENT_PROCESSES
        argv = [sys.executable, __file__, "--client-port", str(port), "--connections", str(each)]
        argv += ["--bundle", str(bundle), "--every", str(args.every)]
        processes = [await trio.lowlevel.open_process(argv) for _ in range(CLIENT_PROCESSES)]
        try:
            with trio.fail_after(300):
                await server.everyone.wait()
            await trio.sleep(args.every + 1)  # every client beating
            cpu, frames, began = time.process_time(), server.frames, time.monotonic()
            await trio.sleep(args.rest)
            took = time.monotonic() - began
            cpu, frames = time.process_time() - cpu, server.frames - frames
        finally:
            for process in processes:
                process.kill()
                await process.wait()
        nursery.cancel_scope.cancel()
    return (
        f"{mode:15} {frames / took:7.0f} frames/s  {cpu / took:6.1%} of a core"
        f"  {cpu / max(frames, 1) * 1e6:6.1f} µs per frame"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between beats")
    parser.add_argument("--rest", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_port is not None:
        trio.run(clients, args.client_port, args.connections, args.bundle, args.every)
        return 0
    if not 2 <= args.connections <= 20_000 or not 0.1 <= args.every <= 60:
        parser.error("--connections from 2 to 20,000, --every from 0.1 to 60 s")
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    with tempfile.TemporaryDirectory() as tmp:
        pki = TestPki.create(Path(tmp))
        cert, key = write_serving(pki.authority, Path(tmp), ["127.0.0.1"])
        context = server_context(pki.ca_cert, cert, key)
        bundle = pki.bundle_dir("bench-0")
        for mode in modes:
            print(trio.run(measure, mode, args, context, bundle), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
