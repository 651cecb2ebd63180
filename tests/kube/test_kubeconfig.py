"""Reading kubeconfig files (kube/kubeconfig.py): kubectl's merge rules, paths relative to
their file, and an error naming the file and the key for each thing that is wrong. No cluster:
the files' certificates are made for the test."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bed.certs import ClusterCerts, make_cluster_certs
from transporter.kube import KubeConfigError
from transporter.kube.access import Fixed, TokenFile
from transporter.kube.exec_plugin import ExecCredentials
from transporter.kube.kubeconfig import read

Config = dict[str, Any]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    return make_cluster_certs(tmp_path_factory.mktemp("pki"))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def config(certs: ClusterCerts) -> Config:
    """A valid kubeconfig: context ``ctx``, cluster ``c``, user ``u`` with a token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": b64(certs.ca_cert),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
    }


def write(path: Path, document: Config | str) -> Path:
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def cluster_of(config: Config) -> Config:
    body: Config = config["clusters"][0]["cluster"]
    return body


def user_of(config: Config) -> Config:
    body: Config = config["users"][0]["user"]
    return body


def test_a_valid_file_gives_its_current_contexts_cluster_and_user(
    config: Config, tmp_path: Path, certs: ClusterCerts
) -> None:
    cluster_of(config)["tls-server-name"] = "kubernetes.default.svc"
    cluster_of(config)["server"] = "https://127.0.0.1:6443/"
    access = read([write(tmp_path / "config", config)])
    assert access.server == "https://127.0.0.1:6443"
    assert access.trust.ca_pem == certs.ca_cert.read_bytes()
    assert access.trust.server_name == "kubernetes.default.svc"
    assert isinstance(access.credentials, Fixed)
    assert access.credentials.auth.token == "t0ken"


def test_the_first_file_to_set_anything_wins(
    config: Config, tmp_path: Path, certs: ClusterCerts
) -> None:
    second = copy.deepcopy(config)
    second["current-context"] = "other"
    second["contexts"].append({"name": "other", "context": {"cluster": "c2", "user": "u"}})
    second["clusters"].append({"name": "c2", "cluster": {"server": "https://elsewhere:1"}})
    user_of(second).update(token="ignored", colour="ignored as a whole, unknown key and all")
    cluster_of(second)["server"] = "https://ignored:1"
    first: Config = {
        "current-context": "ctx",
        "users": config["users"],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    # The cluster comes from the second file: the first has none of that name.
    access = read([write(tmp_path / "1", first), write(tmp_path / "2", second)])
    assert access.server == "https://ignored:1"
    assert isinstance(access.credentials, Fixed)
    assert access.credentials.auth.token == "t0ken"
    # The other way round, the second file's current context and user are taken, whole.
    with pytest.raises(KubeConfigError) as caught:
        read([tmp_path / "2", tmp_path / "1"])
    assert str(caught.value) == f"kubeconfig {tmp_path / '2'}: {U}.colour: unknown key"
    user_of(second).pop("colour")
    access = read([write(tmp_path / "2", second), tmp_path / "1"])
    assert access.server == "https://elsewhere:1"
    assert isinstance(access.credentials, Fixed)
    assert access.credentials.auth.token == "ignored"


def test_paths_are_relative_to_the_file_that_names_them(
    config: Config, tmp_path: Path, certs: ClusterCerts
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ca.crt").write_bytes(certs.ca_cert.read_bytes())
    (tmp_path / "b" / "token").write_text("from-file\n")
    users = {"users": [{"name": "u", "user": {"tokenFile": "token"}}]}
    clusters = {
        "clusters": [
            {"name": "c", "cluster": {"server": "https://x:1", "certificate-authority": "ca.crt"}}
        ]
    }
    head = {"current-context": "ctx", "contexts": config["contexts"]}
    access = read(
        [write(tmp_path / "a" / "c", head), write(tmp_path / "b" / "c", users | clusters)]
    )
    assert access.trust.ca_pem == certs.ca_cert.read_bytes()
    assert isinstance(access.credentials, TokenFile)
    assert access.credentials.current(0).token == "from-file"


def test_an_exec_command_with_a_slash_is_relative_to_its_file(
    config: Config, tmp_path: Path
) -> None:
    user_of(config).clear()
    user_of(config)["exec"] = {
        "command": "bin/plugin",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
    }
    credentials = read([write(tmp_path / "config", config)]).credentials
    assert isinstance(credentials, ExecCredentials)
    assert credentials.config.command == str(tmp_path / "bin" / "plugin")
    user_of(config)["exec"]["command"] = "kubelogin"  # looked up in $PATH
    credentials = read([write(tmp_path / "config", config)]).credentials
    assert isinstance(credentials, ExecCredentials)
    assert credentials.config.command == "kubelogin"


def test_a_context_without_a_user_is_anonymous(config: Config, tmp_path: Path) -> None:
    del config["contexts"][0]["context"]["user"]
    credentials = read([write(tmp_path / "config", config)]).credentials
    assert isinstance(credentials, Fixed)
    assert credentials.auth.token is None and credentials.auth.certificate is None


def _set(where: Callable[[Config], Config], **values: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        where(config).update({key.replace("_", "-"): value for key, value in values.items()})

    return change


def _drop(where: Callable[[Config], Config], key: str) -> Callable[[Config], None]:
    return lambda config: where(config).pop(key)


def _top(config: Config) -> Config:
    return config


def _context(config: Config) -> Config:
    body: Config = config["contexts"][0]["context"]
    return body


def _exec(**values: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        user_of(config).clear()
        user_of(config)["exec"] = {"command": "plugin", **values}

    return change


V1 = "client.authentication.k8s.io/v1"
U = 'users["u"].user'
C = 'clusters["c"].cluster'

BROKEN: list[tuple[str, Callable[[Config], None], str]] = [
    ("unknown top key", _set(_top, colour="blue"), "colour: unknown key"),
    ("not a Config", _set(_top, kind="Pod"), "kind: must be Config"),
    ("no current context", _drop(_top, "current-context"), "current-context is not set"),
    (
        "no such context",
        _set(_top, current_context="gone"),
        "current-context: no context named 'gone' in it",
    ),
    (
        "no such cluster",
        _set(_context, cluster="gone"),
        "contexts[\"ctx\"].context.cluster: no cluster named 'gone' in it",
    ),
    ("no server", _drop(cluster_of, "server"), f"{C}.server: missing"),
    (
        "server without scheme",
        _set(cluster_of, server="example.com:6443"),
        f"{C}.server: 'example.com:6443' is not an https:// (or http://) URL",
    ),
    (
        "bad base64",
        _set(cluster_of, certificate_authority_data="!!!"),
        f"{C}.certificate-authority-data: not valid base64",
    ),
    (
        "not a certificate",
        _set(cluster_of, certificate_authority_data=base64.b64encode(b"hello").decode()),
        f"{C}.certificate-authority: no usable CA certificate",
    ),
    (
        "both CA keys",
        _set(cluster_of, certificate_authority="ca.crt"),
        f"{C}: both certificate-authority and certificate-authority-data are set; keep one",
    ),
    (
        "insecure with a CA",
        _set(cluster_of, insecure_skip_tls_verify=True),
        f"{C}: insecure-skip-tls-verify with a certificate-authority; keep one",
    ),
    ("unknown cluster key", _set(cluster_of, colour="blue"), f"{C}.colour: unknown key"),
    (
        "socks proxy",
        _set(cluster_of, proxy_url="socks5://proxy:1080"),
        f"{C}.proxy-url: scheme socks5: only http:// and https:// proxies work",
    ),
    (
        "oidc auth provider",
        _set(user_of, auth_provider={"name": "oidc", "config": {"id-token": "x"}}),
        f"{U}.auth-provider: auth providers (oidc, gcp, azure) are deprecated and gone from"
        " Kubernetes' own clients; use an exec credential plugin instead",
    ),
    (
        "basic auth",
        _set(user_of, username="admin"),
        f"{U}.username: basic authentication is not supported",
    ),
    ("impersonation", _set(user_of, **{"as": "someone"}), f"{U}.as: impersonation"),
    ("unknown user key", _set(user_of, colour="blue"), f"{U}.colour: unknown key"),
    (
        "not a token",
        _set(user_of, token="two words"),
        f"{U}.token: not a bearer token (visible ASCII, no spaces)",
    ),
    (
        "certificate without key",
        _set(user_of, client_certificate_data=base64.b64encode(b"x").decode()),
        f"{U}: client-key (or client-key-data) is missing; both are needed",
    ),
    (
        "token and tokenFile",
        _set(user_of, tokenFile="token"),
        f"{U}: token and tokenFile are set; keep one",
    ),
    (
        "token and exec",
        _set(user_of, exec={"command": "x"}),
        f"{U}: token and exec are set; keep one",
    ),
    (
        "v1 without interactiveMode",
        _exec(apiVersion=V1),
        f"{U}.exec.interactiveMode: missing (required by {V1})",
    ),
    (
        "interactive plugin",
        _exec(apiVersion=V1, interactiveMode="Always"),
        f"{U}.exec.interactiveMode: Always needs a terminal, and the agent has none",
    ),
    (
        "old plugin API",
        _exec(apiVersion="client.authentication.k8s.io/v1alpha1"),
        f"{U}.exec.apiVersion: 'client.authentication.k8s.io/v1alpha1': must be one of",
    ),
    (
        "exec env",
        _exec(apiVersion=V1, interactiveMode="Never", env=[{"name": "A"}]),
        f"{U}.exec.env[0]: must be {{name, value}}, both strings",
    ),
    ("unknown exec key", _exec(apiVersion=V1, colour="blue"), f"{U}.exec.colour: unknown key"),
]


@pytest.mark.parametrize(
    ("change", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_a_broken_kubeconfig_names_the_file_and_the_key(
    config: Config, tmp_path: Path, change: Callable[[Config], None], expected: str
) -> None:
    change(config)
    path = write(tmp_path / "config", config)
    with pytest.raises(KubeConfigError) as caught:
        read([path])
    assert str(caught.value).startswith(f"kubeconfig {path}: {expected}")


def test_files_that_cannot_be_read_or_parsed(config: Config, tmp_path: Path) -> None:
    bad_yaml = write(tmp_path / "bad", "clusters: [\n  - {name: c\n")
    with pytest.raises(KubeConfigError, match=f"^kubeconfig {bad_yaml}: not valid YAML"):
        read([bad_yaml])
    listed = write(tmp_path / "list", "- a\n- b\n")
    with pytest.raises(KubeConfigError, match=f"^kubeconfig {listed}: not a kubeconfig"):
        read([listed])
    config["clusters"].append(config["clusters"][0])
    twice = write(tmp_path / "twice", config)
    with pytest.raises(KubeConfigError, match=r'clusters\["c"\]: named twice in this file$'):
        read([twice])
    user_of(config).clear()
    user_of(config)["tokenFile"] = "absent"
    config["clusters"].pop()
    no_token = write(tmp_path / "no-token", config)
    with pytest.raises(KubeConfigError) as caught:
        read([no_token])
    assert str(caught.value) == (
        f"kubeconfig {no_token}: {U}.tokenFile: cannot read {tmp_path / 'absent'}:"
        " No such file or directory"
    )
    (tmp_path / "absent").write_text("\n")
    with pytest.raises(KubeConfigError, match=r"tokenFile: cannot read .*/absent: empty$"):
        read([no_token])


def test_merged_files_say_which_were_read(config: Config, tmp_path: Path) -> None:
    del config["current-context"]
    first, second = write(tmp_path / "1", config), write(tmp_path / "2", "")  # empty is valid
    with pytest.raises(KubeConfigError) as caught:
        read([first, second])
    assert str(caught.value) == (
        f"none of the kubeconfig files {first}, {second} sets current-context"
    )
    config["current-context"] = "gone"
    write(first, config)
    with pytest.raises(KubeConfigError) as caught:
        read([first, second])
    assert str(caught.value) == (
        f"kubeconfig {first}: current-context: no context named 'gone' in any of {first}, {second}"
    )


def test_a_kubeconfig_is_read_by_the_bounded_reader_without_quoting_it(tmp_path: Path) -> None:
    """A key written twice would silently win one way or the other: refused, with its place;
    an alias bomb is refused by its expanded size; neither message quotes the file."""
    twice = write(tmp_path / "twice", "current-context: a\ncurrent-context: b\n")
    with pytest.raises(KubeConfigError, match="YAML duplicate key 'current-context' at line 2"):
        read([twice])
    lines = ["a: &a [" + ",".join(["secret-value"] * 50) + "]"]
    lines += [
        f"{chr(98 + n)}: &{chr(98 + n)} [" + ",".join([f"*{chr(97 + n)}"] * 50) + "]"
        for n in range(4)
    ]
    bomb = write(tmp_path / "bomb", "\n".join(lines) + "\n")
    with pytest.raises(KubeConfigError, match="YAML aliases expand to more than") as caught:
        read([bomb])
    assert "secret-value" not in str(caught.value)
    several = write(tmp_path / "several", "kind: Config\n---\nkind: Config\n")
    with pytest.raises(KubeConfigError, match="several YAML documents"):
        read([several])
