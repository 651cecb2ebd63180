"""Our HTTP clients' connections, each test run on both: trio's sockets (kube/trio_client.py,
kube/http1.py) and the thread client (kube/client.py, kube/pool.py), which serves an API
server behind a proxy. Kept alive between requests, at most so many kept, never used once the
server has closed them, sent again at once only when the server cannot have acted on the
request; answers read whole (chunked too) within the total timeout, and redirects refused. The
real API server sits behind a :class:`FaultFront`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.bed.accounts import Plugin, connected, with_user
from tests.bed.certs import issue_client_cert
from tests.bed.front import FaultFront
from tests.bed.kube import Cluster
from transporter.kube import KubeRejected, KubeUnavailable
from transporter.kube.client import HttpClient
from transporter.kube.credentials import load
from transporter.kube.retry import NO_RETRY
from transporter.kube.transport import Transport
from transporter.kube.trio_client import TrioClient

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MISSING = f"{CONFIGMAPS}/keepalive-absent"
"""PATCHed to get a real answer (404) without changing anything."""


LOST = r"(RemoteDisconnected|the API server closed the connection before answering)"
"""How each client says the connection ended before any byte of the answer."""


@pytest.fixture(params=["trio", "thread"], autouse=True)
def client_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which client the transport uses: ``thread`` as when a proxy is on the way."""
    if request.param == "thread":
        monkeypatch.setattr(TrioClient, "serves", lambda self: False)
    return str(request.param)


@pytest.fixture
async def front(cluster: Cluster) -> AsyncIterator[FaultFront]:
    front = FaultFront(cluster)
    async with trio.open_nursery() as nursery:
        await nursery.start(front.serve)
        yield front
        nursery.cancel_scope.cancel()


def connections(front: FaultFront, method: str) -> list[int]:
    """The connection each ``method`` request came on, in order."""
    return [seen.connection for seen in front.requests(method)]


async def patch(transport: Transport, body: dict[str, object] | None = None) -> None:
    """A merge patch of a ConfigMap that does not exist, tried once."""
    await transport.request(
        "PATCH",
        MISSING,
        body=body or {"data": {"k": "v"}},
        content_type="application/merge-patch+json",
        retry=NO_RETRY,
    )


async def test_a_connection_is_kept_for_the_next_requests(
    front: FaultFront, tmp_path: Path
) -> None:
    async with connected(front.kubeconfig(tmp_path)) as transport:
        for _ in range(3):
            assert "gitVersion" in await transport.get("/version")
        assert connections(front, "GET") == [1, 1, 1]
        assert front.open == 1
    with trio.fail_after(5):
        await front.wait_until(lambda: front.open == 0)  # closed with the transport


async def test_at_most_max_idle_connections_are_kept(front: FaultFront, tmp_path: Path) -> None:
    loaded = await trio.to_thread.run_sync(load, front.kubeconfig(tmp_path))
    client = HttpClient(loaded.configuration, max_idle=2)
    transport = Transport(client, timeout=10.0, limiter=trio.CapacityLimiter(5))
    gate = trio.Event()
    front.hold(gate, times=5, method="GET")
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(transport.get, "/version")
            with trio.fail_after(10):
                await front.wait_for("GET", 5)  # five at once: five connections
            gate.set()
        with trio.fail_after(5):
            await front.wait_until(lambda: front.open == 2)  # three closed as they came back
        first = set(connections(front, "GET"))
        assert first == {1, 2, 3, 4, 5}
        for _ in range(4):
            await transport.get("/version")
        assert set(connections(front, "GET")[5:]) <= first  # the kept ones, no new one
        assert front.open == 2
    finally:
        transport.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used(
    front: FaultFront, tmp_path: Path
) -> None:
    """A POST without a body is sent whole in one write, and not sent again once sent: had it
    gone on the closed connection, it would fail."""
    front.close_after_answer = True  # without saying so: the client keeps it
    async with connected(front.kubeconfig(tmp_path)) as transport:
        await transport.get("/version")
        with trio.fail_after(5):
            await front.wait_until(lambda: front.closed == 1)
        with pytest.raises(KubeRejected) as refused:  # an answer of the API server
            await transport.request("POST", CONFIGMAPS, retry=NO_RETRY)
        assert refused.value.code == 400
    assert connections(front, "POST") == [2]


async def test_a_get_lost_on_a_kept_connection_is_sent_again_at_once(
    front: FaultFront, tmp_path: Path
) -> None:
    async with connected(front.kubeconfig(tmp_path)) as transport:
        await transport.get("/version")
        front.cut("close", method="GET")  # the race: it closes as our request comes
        answer = await transport.request("GET", "/version", retry=NO_RETRY)
        assert "gitVersion" in answer
    assert connections(front, "GET") == [1, 1, 2]


async def test_a_patch_lost_on_a_kept_connection_is_not_sent_again_at_once(
    front: FaultFront, tmp_path: Path
) -> None:
    """It came whole before the connection ended: the server may have applied it."""
    async with connected(front.kubeconfig(tmp_path)) as transport:
        await transport.get("/version")
        front.cut("close", method="PATCH")
        with pytest.raises(KubeUnavailable, match=f"^connection to the API server failed: {LOST}"):
            await patch(transport)
    assert connections(front, "PATCH") == [1]


async def test_a_patch_whose_sending_failed_on_a_kept_connection_is_sent_again(
    front: FaultFront, tmp_path: Path
) -> None:
    """Reset while its body was still on its way: the server never had it whole."""
    async with connected(front.kubeconfig(tmp_path)) as transport:
        await transport.get("/version")
        front.cut("reset", method="PATCH")  # more than the sockets' buffers hold is left to send
        front.answer(422, times=1, method="PATCH", message="the second PATCH")
        with pytest.raises(KubeRejected, match=r"^the second PATCH$"):
            await patch(transport, {"data": {"k": "x" * (32 << 20)}})
    assert connections(front, "PATCH") == [1, 2]


async def test_a_request_lost_on_a_new_connection_is_not_sent_again(
    front: FaultFront, tmp_path: Path
) -> None:
    front.cut("close", method="GET")
    async with connected(front.kubeconfig(tmp_path)) as transport:
        with pytest.raises(KubeUnavailable, match=LOST):
            await transport.request("GET", "/version", retry=NO_RETRY)
    assert connections(front, "GET") == [1]


async def test_chunked_answers_are_read_whole(front: FaultFront, tmp_path: Path) -> None:
    async with connected(front.kubeconfig(tmp_path)) as transport:
        whole = await transport.get("/api/v1")
        front.chunk = 100
        assert await transport.get("/api/v1") == whole
        assert await transport.get("/api/v1") == whole
    assert connections(front, "GET") == [1, 1, 1]


async def test_an_answer_sent_slowly_ends_within_the_timeout(
    front: FaultFront, tmp_path: Path
) -> None:
    """The timeout bounds the whole request, however the answer trickles in."""
    front.trickle = 0.05  # a byte every 50 ms: about 15 s for /version
    kubeconfig = front.kubeconfig(tmp_path)
    loaded = await trio.to_thread.run_sync(load, kubeconfig)
    client = HttpClient(loaded.configuration, max_idle=1)
    transport = Transport(client, timeout=1.0, limiter=trio.CapacityLimiter(1))
    start = trio.current_time()
    try:
        with pytest.raises(KubeUnavailable, match=r"^the API server did not answer in time"):
            await transport.request("GET", "/version", retry=NO_RETRY)
    finally:
        transport.close()
    assert trio.current_time() - start < 1.5  # not the transport's grace on top


async def test_a_redirect_is_refused_not_followed(front: FaultFront, tmp_path: Path) -> None:
    elsewhere = "https://elsewhere.invalid/version"
    front.answer(302, times=1, method="GET", location=elsewhere)
    async with connected(front.kubeconfig(tmp_path)) as transport:
        with pytest.raises(
            KubeRejected, match=f"^the API server answered 302, a redirect to {elsewhere}"
        ):
            await transport.get("/version")
        assert "gitVersion" in await transport.get("/version")
    assert connections(front, "GET") == [1, 1]


async def test_an_answer_given_before_the_whole_request_was_taken_is_read(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The API server refuses a body over its limit once it has read that much, and closes the
    connection while we are still sending: its answer is what we report."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "too-large"}}
    async with connected(cluster.kubeconfig) as transport:
        with pytest.raises(KubeRejected, match=r"^Request entity too large") as refused:
            await transport.request(
                "POST", CONFIGMAPS, body=body | {"data": {"k": "x" * (32 << 20)}}, retry=NO_RETRY
            )
    assert refused.value.code == 413


async def test_an_answer_over_the_bound_is_refused_and_its_connection_dropped(
    front: FaultFront, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(front.kubeconfig(tmp_path)) as transport:
        whole = await transport.get("/api/v1")
        monkeypatch.setattr("transporter.kube.client.MAX_ANSWER_BYTES", 1000)
        monkeypatch.setattr("transporter.kube.trio_client.MAX_ANSWER_BYTES", 1000)
        with pytest.raises(KubeRejected, match="answer is over 1000 bytes: not read"):
            await transport.get("/api/v1")
        monkeypatch.undo()
        assert await transport.get("/api/v1") == whole
    assert connections(front, "GET") == [1, 1, 2]  # the cut answer's connection not kept


async def test_a_connection_made_with_a_replaced_certificate_is_not_kept(
    front: FaultFront, tmp_path: Path
) -> None:
    """An exec plugin's client certificate expires while a request made with it is on its way:
    once answered, that connection is closed, not kept beside the new certificate's."""
    certs = front.cluster.certs

    def plan(name: str) -> None:
        cert, key = issue_client_cert(certs, name, "system:masters")
        plugin.plan(
            clientCertificateData=cert.read_text(), clientKeyData=key.read_text(), lifetime=1
        )

    plugin = Plugin(tmp_path / "plugin")
    plan("first")
    user = {"exec": plugin.exec_entry()}
    kubeconfig = with_user(
        front.cluster, user, tmp_path / "config", cluster_changes={"server": front.server}
    )
    gate = trio.Event()
    front.hold(gate, times=1, method="GET")
    async with connected(kubeconfig) as transport, trio.open_nursery() as nursery:
        nursery.start_soon(transport.get, "/version")
        with trio.fail_after(10):
            await front.wait_for("GET", 1)
        await trio.sleep(1.2)  # the first certificate's lifetime is over
        plan("second")
        await transport.get("/version")  # the new certificate: a new connection
        gate.set()
        with trio.fail_after(10):
            await front.wait_until(lambda: front.closed == 1)  # the first one's, once answered
        await transport.get("/version")
    assert len(plugin.requests) == 2
    assert connections(front, "GET") == [1, 2, 2]
