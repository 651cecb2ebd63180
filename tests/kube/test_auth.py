"""Each way of proving who we are, against the test bed's real API server: a client
certificate, a bearer token (a ServiceAccount's, from the TokenRequest API), a token file, an
exec credential plugin, the in-cluster service account, and kubeconfig files merged.

The API server's RBAC shows who it took us for: a ServiceAccount without rights is answered 403
naming it; a wrong token 401.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import trio
import yaml

from tests.bed.accounts import (
    EXEC_V1,
    EXEC_V1BETA1,
    Plugin,
    account_name,
    account_token,
    certificate_data,
    connected,
    using,
    with_user,
)
from tests.bed.kube import Cluster
from transporter.kube import KubeConfigError, KubeRejected, KubeTarget, KubeUnavailable
from transporter.kube import credentials as kube_config
from transporter.kube.access import LOOK_EVERY
from transporter.kube.transport import Transport

SECRETS = "/api/v1/namespaces/default/secrets"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def refused_as(transport: Transport) -> str:
    """Who the API server took us for: the user its 403 names (RBAC gives that one nothing)."""
    with pytest.raises(KubeRejected) as refused:
        await transport.get(SECRETS)
    assert refused.value.code == 403, refused.value
    user = refused.value.message.split('"')[1]
    return user


# --- client certificates ---------------------------------------------------------------------


async def test_a_client_certificate_inline_or_in_files_beside_the_kubeconfig(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with connected(cluster.kubeconfig) as inline:
        assert (await inline.get(SECRETS))["kind"] == "SecretList"

    folder = tmp_path / "conf"
    folder.mkdir()
    for source, name in (
        (cluster.certs.ca_cert, "ca.crt"),
        (cluster.certs.admin_cert, "admin.crt"),
        (cluster.certs.admin_key, "admin.key"),
    ):
        shutil.copy(source, folder / name)
    # Relative paths are relative to the kubeconfig, not to where the agent runs.
    files = with_user(
        cluster,
        {"client-certificate": "admin.crt", "client-key": "admin.key"},
        folder / "config",
        cluster_changes={"certificate-authority-data": None, "certificate-authority": "ca.crt"},
    )
    async with connected(files) as from_files:
        assert (await from_files.get(SECRETS))["kind"] == "SecretList"


# --- bearer tokens -----------------------------------------------------------------------------


async def test_a_bearer_token_is_sent(cluster: Cluster, tmp_path: Path) -> None:
    name = unique("token")
    token = await account_token(cluster, name)
    async with connected(with_user(cluster, {"token": token}, tmp_path / "a")) as transport:
        assert "gitVersion" in await transport.get("/version")
        assert await refused_as(transport) == account_name("default", name)

    wrong = with_user(cluster, {"token": token[:-4] + "AAAA"}, tmp_path / "wrong")
    async with connected(wrong) as transport:
        with pytest.raises(KubeRejected) as unauthorised:
            await transport.get(SECRETS)
    assert unauthorised.value.code == 401


async def test_a_token_file_is_read_again_when_it_changes(cluster: Cluster, tmp_path: Path) -> None:
    first, second = unique("first"), unique("second")
    (tmp_path / "token").write_text(await account_token(cluster, first) + "\n")
    kubeconfig = with_user(cluster, {"tokenFile": "token"}, tmp_path / "config")
    async with connected(kubeconfig) as transport:
        assert await refused_as(transport) == account_name("default", first)
        # Rotated the way the kubelet does it: a new file moved over the old one.
        (tmp_path / "token.new").write_text(await account_token(cluster, second))
        (tmp_path / "token.new").replace(tmp_path / "token")
        await trio.sleep(LOOK_EVERY)  # the file is looked at again at most this much later
        assert await refused_as(transport) == account_name("default", second)


async def test_a_refused_token_is_not_used_again_without_a_look(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Within :data:`LOOK_EVERY` a request uses the token last read, but never one the API
    server has refused (401): the next request reads the file again at once."""
    name = unique("after-401")
    (tmp_path / "token").write_text("not-a-token\n")
    kubeconfig = with_user(cluster, {"tokenFile": "token"}, tmp_path / "config")
    async with connected(kubeconfig) as transport:
        with pytest.raises(KubeRejected) as refused:
            await transport.get(SECRETS)
        assert refused.value.code == 401
        (tmp_path / "token.new").write_text(await account_token(cluster, name))
        (tmp_path / "token.new").replace(tmp_path / "token")
        assert await refused_as(transport) == account_name("default", name)


# --- exec credential plugins -------------------------------------------------------------------


@pytest.mark.parametrize("api_version", [EXEC_V1, EXEC_V1BETA1])
async def test_an_exec_plugins_token_is_used_until_it_expires(
    cluster: Cluster, tmp_path: Path, api_version: str
) -> None:
    name = unique("exec")
    plugin = Plugin(tmp_path / "plugin", api_version=api_version)
    plugin.plan(token=await account_token(cluster, name), lifetime=2)
    entry = plugin.exec_entry(args=["--flag", "x"], env=[{"name": "PLUGIN_TEST_ENV", "value": "v"}])
    kubeconfig = with_user(cluster, {"exec": entry}, tmp_path / "config")
    async with connected(kubeconfig) as transport:
        assert await refused_as(transport) == account_name("default", name)
        assert await refused_as(transport) == account_name("default", name)
        assert len(plugin.requests) == 1  # the token is kept while it is valid
        await trio.sleep(2.5)
        assert await refused_as(transport) == account_name("default", name)
        assert len(plugin.requests) == 2  # expired: the plugin ran again
    seen = plugin.requests[0]
    assert seen["info"] == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
    assert (seen["args"], seen["env"]) == (["--flag", "x"], "v")


async def test_an_exec_plugin_runs_again_when_its_token_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = unique("again")
    token = await account_token(cluster, name)
    plugin = Plugin(tmp_path / "plugin")
    plugin.plan(token=token[:-4] + "AAAA")  # no expiry: kept until refused
    kubeconfig = with_user(cluster, {"exec": plugin.exec_entry()}, tmp_path / "config")
    async with connected(kubeconfig) as transport:
        with pytest.raises(KubeRejected) as unauthorised:
            await transport.get(SECRETS)
        assert unauthorised.value.code == 401
        plugin.plan(token=token)
        assert await refused_as(transport) == account_name("default", name)
    assert len(plugin.requests) == 2


async def test_an_exec_plugins_client_certificate_and_the_cluster_it_is_told(
    cluster: Cluster, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.plan(
        clientCertificateData=cluster.certs.admin_cert.read_text(),
        clientKeyData=cluster.certs.admin_key.read_text(),
        lifetime=600,
    )
    entry = plugin.exec_entry(provideClusterInfo=True)
    kubeconfig = with_user(cluster, {"exec": entry}, tmp_path / "config")
    async with connected(kubeconfig) as transport:
        assert (await transport.get(SECRETS))["kind"] == "SecretList"  # as the admin
    told = plugin.requests[0]["info"]["spec"]["cluster"]
    assert told["server"] == cluster.server
    assert told["certificate-authority-data"]


async def test_an_exec_plugin_that_fails_is_a_clear_error(cluster: Cluster, tmp_path: Path) -> None:
    plugin = Plugin(tmp_path / "plugin")
    kubeconfig = with_user(cluster, {"exec": plugin.exec_entry()}, tmp_path / "config")
    where = f'kubeconfig {kubeconfig}: users["{cluster.name}-admin"].user.exec'

    plugin.plan(exit=3, stderr="you are not logged in\n")
    with pytest.raises(KubeConfigError) as failed:
        async with KubeTarget.connect(kubeconfig):
            pass
    assert str(failed.value) == (
        f"exec plugin {str(plugin.path)!r} ({where}) exited with 3: you are not logged in"
    )

    plugin.plan(stdout="Please log in at https://example.com\n")
    with pytest.raises(KubeConfigError, match="printed something that is not JSON"):
        async with KubeTarget.connect(kubeconfig):
            pass

    missing = {"command": "no-such-plugin", "apiVersion": EXEC_V1, "interactiveMode": "Never"}
    absent = with_user(
        cluster, {"exec": missing | {"installHint": "install it"}}, tmp_path / "absent"
    )
    with pytest.raises(KubeConfigError, match=r"cannot run: .*\(install it\)$"):
        async with KubeTarget.connect(absent):
            pass


async def test_an_exec_plugin_that_hangs_is_cut_off_at_the_timeout(
    cluster: Cluster, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.plan(token="never", sleep=30)
    kubeconfig = with_user(cluster, {"exec": plugin.exec_entry()}, tmp_path / "config")
    start = trio.current_time()
    with pytest.raises(KubeUnavailable, match="did not finish within"):
        async with KubeTarget.connect(kubeconfig, timeout=1.0):
            pass
    assert trio.current_time() - start < 3.0


# --- in-cluster ------------------------------------------------------------------------------


def service_account_folder(folder: Path, cluster: Cluster, token: str) -> Path:
    """A service account's folder as the kubelet projects it: files behind a ``..data`` link
    that it swaps to rotate them."""
    folder.mkdir()
    _project(folder, cluster, token)
    for name in ("token", "ca.crt", "namespace"):
        (folder / name).symlink_to(Path("..data") / name)
    return folder


def _project(folder: Path, cluster: Cluster, token: str) -> None:
    version = folder / f"..{uuid.uuid4().hex[:8]}"
    version.mkdir()
    (version / "token").write_text(token)
    shutil.copy(cluster.certs.ca_cert, version / "ca.crt")
    (version / "namespace").write_text("default")
    link = folder / "..data_tmp"
    link.symlink_to(version.name)
    link.replace(folder / "..data")


def in_pod(monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> None:
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)


async def test_in_a_pod_the_service_account_is_used_and_its_token_follows_rotation(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = unique("pod"), unique("rotated")
    account = service_account_folder(
        tmp_path / "serviceaccount", cluster, await account_token(cluster, first)
    )
    in_pod(monkeypatch, cluster)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))  # not used: in-cluster comes first
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT", account)
    async with KubeTarget.connect(None) as target:
        assert (target.source, target.server) == ("in-cluster service account", cluster.server)

    loaded = await trio.to_thread.run_sync(kube_config.load, None)
    async with using(loaded) as transport:
        assert await refused_as(transport) == account_name("default", first)
        _project(account, cluster, await account_token(cluster, second))
        await trio.sleep(LOOK_EVERY)  # the file is looked at again at most this much later
        assert await refused_as(transport) == account_name("default", second)


async def test_in_a_pod_a_broken_service_account_is_a_clear_error(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = service_account_folder(tmp_path / "serviceaccount", cluster, "token")
    in_pod(monkeypatch, cluster)
    (account / "..data" / "ca.crt").write_text("not a certificate\n")
    with pytest.raises(KubeConfigError, match=r"^in-cluster service account: .*ca\.crt holds no"):
        await trio.to_thread.run_sync(lambda: kube_config.load(None, service_account=account))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443x")
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_PORT='6443x' is not a port"):
        await trio.to_thread.run_sync(lambda: kube_config.load(None, service_account=account))


# --- several kubeconfig files ----------------------------------------------------------------


async def test_kubeconfig_files_merge_as_kubectl_merges_them(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("merged")
    token = await account_token(cluster, name)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    first = tmp_path / "first"
    first.write_text(
        yaml.safe_dump(
            {
                "current-context": "work",
                "contexts": [{"name": "work", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": token}}],
            }
        )
    )
    second = tmp_path / "second"
    second.write_text(
        yaml.safe_dump(
            {
                "current-context": "elsewhere",  # the first file's wins
                "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": "u", "user": certificate_data(cluster)}],  # the first wins
            }
        )
    )
    listed = os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)])
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", listed)
    loaded = await trio.to_thread.run_sync(kube_config.load, None)
    assert loaded.source == f"$KUBECONFIG ({listed})"
    assert loaded.configuration.server == cluster.server
    async with using(loaded) as transport:
        assert await refused_as(transport) == account_name("default", name)
