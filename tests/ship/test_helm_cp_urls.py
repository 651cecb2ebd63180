"""The agent chart's control-plane URLs: ``cpUrl``, and ``cpUrls`` for replicas, given to the
agent as one comma-separated ``TRANSPORTER_CP_URL`` in the order it dials them; each URL checked
by the schema, none twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bed.helm import AGENT_CHART, HelmFailed, helm, pod_specs, render
from transporter import cli
from transporter.config.agent import AgentConfig

ONE = "wss://cp-0.example.com:8443/ws"
TWO = "wss://cp-1.example.com:8443/ws"


def cp_url_of(*values: Path, sets: dict[str, str] | None = None) -> str:
    (spec,) = pod_specs(render(AGENT_CHART, *values, sets=sets))
    (container,) = spec["containers"]
    (url,) = [env["value"] for env in container["env"] if env["name"] == "TRANSPORTER_CP_URL"]
    assert isinstance(url, str)
    return url


def test_one_url_is_given_as_it_was() -> None:
    assert cp_url_of(sets={"cpUrl": ONE}) == ONE


def test_replicas_follow_cp_url_and_the_agent_reads_them_in_that_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = cp_url_of(AGENT_CHART / "examples" / "replicas.yaml")
    assert value.count(",") == 2 and value.startswith("wss://cp-0.")
    monkeypatch.setenv("TRANSPORTER_CP_URL", value)
    settings = cli.parse(["agent", "--bundle", "/etc/transporter/bundle"])
    assert isinstance(settings, AgentConfig)
    assert settings.cp_urls == tuple(value.split(","))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--set", f"cpUrl={ONE}", "--set", f"cpUrls={{{ONE}}}"], "give each control-plane URL"),
        (["--set", f"cpUrl={ONE}", "--set", "cpUrls={ws://cp-1/ws}"], "at '/cpUrls/0'"),
        (["--set", f"cpUrl={ONE}", "--set", f"cpUrls={{{TWO},{TWO}}}"], "at '/cpUrls'"),
        (["--set", f"cpUrl={ONE}?a=1\\,2"], "at '/cpUrl'"),  # the agent would split it
        (
            [
                "--set",
                f"cpUrl={ONE}",
                "--set",
                "cpUrls={" + ",".join(f"wss://c{n}/ws" for n in range(16)) + "}",
            ],
            "at '/cpUrls'",
        ),
    ],
)
def test_bad_urls_are_refused_saying_which(args: list[str], said: str) -> None:
    with pytest.raises(HelmFailed) as refused:
        helm("template", "t", str(AGENT_CHART), "--namespace", "transporter", *args)
    assert said in str(refused.value)
