"""The producer's HTTP client never follows a redirect: urllib would send the bearer token along
to wherever the redirect points."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from transporter.produce.client import ApiError, Client


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]
    location = ""

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        if self.location:
            self.send_response(307)
            self.send_header("Location", self.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b'{"items": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(location: str = "") -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "location": location})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_redirect_is_an_error_and_the_token_goes_nowhere_else() -> None:
    with serving() as (elsewhere, seen_elsewhere), serving(f"{elsewhere}/agents") as (cp, seen):
        client = Client(cp, token="tpt_0123456789ab_" + "A" * 43)
        with pytest.raises(ApiError) as refused:
            await client.agents()
        assert refused.value.status == 307
        assert seen and seen[0]["Authorization"].startswith("Bearer tpt_")
        assert seen_elsewhere == []  # not followed
        # Without the redirect the same client works.
        assert await Client(elsewhere).agents() == []
