"""Proxies between the agent and its API server (kube/proxy.py, kube/connection.py): which one
(a kubeconfig's ``proxy-url``, else the environment as client-go reads it), tunnels through
``http://`` and ``https://`` proxies, requests forwarded for an ``http://`` server, proxy
credentials, and SOCKS refused. The proxy is the real one of connect_proxy.py."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed.accounts import certificate_data, connected, with_user
from tests.bed.connect_proxy import ConnectProxy
from tests.bed.front import FaultFront, pointed_at
from tests.bed.kube import Cluster
from tests.bed.process import free_port
from transporter.kube import KubeConfigError, KubeUnavailable
from transporter.kube.proxy import Proxy, parse_proxy, proxy_for
from transporter.kube.retry import NO_RETRY

SERVICE_NAME = "kubernetes.default.svc"
"""A name in the test API server's serving certificate that no DNS resolves here."""


@asynccontextmanager
async def serving(proxy: ConnectProxy) -> AsyncIterator[ConnectProxy]:
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


def through(cluster: Cluster, path: Path, **cluster_changes: Any) -> Path:
    """The cluster's kubeconfig (admin certificate) with ``cluster_changes`` (``proxy_url=``)."""
    changes = {key.replace("_", "-"): value for key, value in cluster_changes.items()}
    return with_user(cluster, certificate_data(cluster), path, cluster_changes=changes)


def serving_tls(cluster: Cluster) -> ssl.SSLContext:
    """The API server's own certificate (for 127.0.0.1, from the test bed's CA), for a proxy."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cluster.certs.serving_cert, cluster.certs.serving_key)
    return context


async def test_a_proxy_url_carries_every_request_through_one_tunnel(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with serving(ConnectProxy()) as proxy:
        kubeconfig = through(cluster, tmp_path / "c", proxy_url=proxy.url)
        async with connected(kubeconfig) as transport:
            for _ in range(3):
                assert "gitVersion" in await transport.get("/version")
    assert proxy.tunnels == [cluster.server.removeprefix("https://")]  # the connection kept


async def test_an_https_proxy_carries_tls_inside_its_own(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is checked against the system's CAs (here: the test bed's, by SSL_CERT_FILE),
    the API server against the cluster's."""
    async with serving(ConnectProxy(tls=serving_tls(cluster))) as proxy:
        kubeconfig = through(cluster, tmp_path / "c", proxy_url=proxy.url)
        async with connected(kubeconfig) as transport:
            with pytest.raises(KubeUnavailable) as untrusted:
                await transport.request("GET", "/version", retry=NO_RETRY)
        assert str(untrusted.value).startswith(f"TLS with the proxy 127.0.0.1:{proxy.port} failed")
        assert "certificate verify failed" in str(untrusted.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(cluster.certs.ca_cert))
        async with connected(kubeconfig) as transport:
            assert "gitVersion" in await transport.get("/version")
            secrets = await transport.get("/api/v1/namespaces/default/secrets")
            assert secrets["kind"] == "SecretList"
    assert proxy.tunnels == [cluster.server.removeprefix("https://")]


async def test_a_proxys_user_and_password_are_sent_and_never_shown(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with serving(ConnectProxy(user="agent:pa:ss w@rd")) as proxy:
        host = proxy.url.removeprefix("http://")
        right = through(
            cluster, tmp_path / "right", proxy_url=f"http://agent:pa%3Ass%20w%40rd@{host}"
        )
        async with connected(right) as transport:
            assert "gitVersion" in await transport.get("/version")
        wrong = through(cluster, tmp_path / "wrong", proxy_url=f"http://agent:guess@{host}")
        async with connected(wrong) as transport:
            with pytest.raises(KubeUnavailable) as refused:
                await transport.request("GET", "/version", retry=NO_RETRY)
    assert str(refused.value) == (
        f"cannot connect to the API server through the proxy {host}: "
        "Tunnel connection failed: 407 Proxy Authentication Required"
    )
    assert "guess" not in str(refused.value)
    assert (len(proxy.tunnels), proxy.refused) == (1, 1)


async def test_the_environments_proxy_is_used_for_a_server_it_does_not_exempt(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name only the proxy can resolve: reached through it, or not at all."""
    port = cluster.server.rsplit(":", 1)[1]
    async with serving(ConnectProxy(names={SERVICE_NAME: "127.0.0.1"})) as proxy:
        kubeconfig = pointed_at(cluster, f"https://{SERVICE_NAME}:{port}", tmp_path)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.removeprefix("http://"))  # bare host:port
        monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,.example")
        async with connected(kubeconfig) as transport:
            assert "gitVersion" in await transport.get("/version")
    assert proxy.tunnels == [f"{SERVICE_NAME}:{port}"]


async def test_an_http_server_behind_a_proxy_gets_requests_in_absolute_form(
    cluster: Cluster, tmp_path: Path
) -> None:
    front = FaultFront(cluster, tls=False)
    async with trio.open_nursery() as nursery, serving(ConnectProxy(user="a:b")) as proxy:
        await nursery.start(front.serve)
        host = proxy.url.removeprefix("http://")
        kubeconfig = with_user(
            cluster, {}, tmp_path / "c", cluster_changes={"proxy-url": f"http://a:b@{host}"}
        )
        kubeconfig.write_text(kubeconfig.read_text().replace(cluster.server, front.server))
        async with connected(kubeconfig) as transport:
            for _ in range(2):
                assert "gitVersion" in await transport.get("/version")
        nursery.cancel_scope.cancel()
    version = f"{front.server}/version"
    assert proxy.forwarded == [version]  # one connection, kept
    assert [(seen.path, seen.connection) for seen in front.seen] == [(version, 1), (version, 1)]


async def test_a_proxy_that_is_down_is_named(cluster: Cluster, tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with connected(through(cluster, tmp_path / "c", proxy_url=f"http://{nowhere}")) as t:
        with pytest.raises(KubeUnavailable) as caught:
            await t.request("GET", "/version", retry=NO_RETRY)
    assert str(caught.value) == (
        f"cannot connect to the API server through the proxy {nowhere}: Connection refused"
    )


async def test_a_socks_proxy_from_the_environment_is_refused(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = pointed_at(cluster, "https://api.example.invalid:6443", tmp_path)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:secret@127.0.0.1:1080")
    async with connected(kubeconfig) as transport:
        with pytest.raises(KubeConfigError) as caught:
            await transport.request("GET", "/version", retry=NO_RETRY)
    assert str(caught.value) == (
        "proxy for https://api.example.invalid:6443: socks5 scheme: only http:// and https://"
        " proxies work"
    )


ENV = {"HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "10.0.0.0/8,.svc,api.example:6443"}


@pytest.mark.parametrize(
    ("server", "proxy"),
    [
        ("https://api.example.com:6443", "http://proxy.corp:3128"),
        ("https://10.96.0.1:443", None),  # in a CIDR range of NO_PROXY
        ("https://kubernetes.default.svc", None),  # a subdomain of .svc
        ("https://api.example:6443", None),  # host:port
        ("https://api.example:443", "http://proxy.corp:3128"),  # another port
        ("https://127.0.0.1:6443", None),  # loopback is never proxied
        ("https://localhost:6443", None),
    ],
)
def test_the_environments_proxy_as_client_go_reads_it(server: str, proxy: str | None) -> None:
    assert proxy_for(server, None, ENV) == proxy


def test_a_kubeconfigs_proxy_wins_and_lower_case_variables_count() -> None:
    assert proxy_for("https://127.0.0.1:1", "http://p:1", ENV) == "http://p:1"
    assert proxy_for("https://a.b", None, {"https_proxy": "http://low:1"}) == "http://low:1"
    assert proxy_for("https://a.b", None, {"https_proxy": "http://x:1", "no_proxy": "*"}) is None
    assert proxy_for("http://a.b", None, {"HTTPS_PROXY": "http://x:1"}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.corp", Proxy(tls=False, host="proxy.corp", port=80)),
        ("https://proxy.corp", Proxy(tls=True, host="proxy.corp", port=443)),
        ("http://[fd00::1]:3128", Proxy(tls=False, host="fd00::1", port=3128)),
        # user:pass, as RFC 7617 encodes them
        ("http://u:p@p:1", Proxy(tls=False, host="p", port=1, authorization="Basic dTpw")),
        ("http://u@p:1", Proxy(tls=False, host="p", port=1, authorization="Basic dTo=")),
    ],
)
def test_a_proxy_url_read(url: str, expected: Proxy) -> None:
    assert parse_proxy(url) == expected


BAD_PROXIES: Mapping[str, str] = {
    "socks5://p:1080": "socks5 scheme: only http:// and https:// proxies work",
    "p:1": "p scheme: only http:// and https:// proxies work",
    "http://p:port": "the proxy's port is not a number",
    "http://:1": "the proxy URL names no host",
}


@pytest.mark.parametrize("url", BAD_PROXIES)
def test_a_proxy_url_that_cannot_be_used(url: str) -> None:
    with pytest.raises(ValueError, match=f"^{BAD_PROXIES[url]}$"):
        parse_proxy(url)


def test_a_proxy_is_named_without_its_credentials() -> None:
    assert parse_proxy("http://u:secret@[fd00::1]:1").name == "[fd00::1]:1"
    assert parse_proxy("https://u:secret@proxy.corp").name == "proxy.corp:443"
