"""``transporter agent --cp-url``, once or repeated (replicas of one control plane): one URL as
ever, several from the flag or from ``TRANSPORTER_CP_URL`` comma-separated, and one-line usage
errors for a bad one, a repeated one, too many, or a plain one without its switch."""

from __future__ import annotations

import pytest

from transporter import cli
from transporter.config.agent import MAX_CP_URLS, AgentConfig

PLAIN = ["agent", "--agent-id", "a", "--insecure-plain-ws", "--log-format", "text"]
SECURE = ["agent", "--bundle", "/etc/transporter/bundle", "--log-format", "text"]


def urls_of(*argv: str) -> tuple[str, ...]:
    settings = cli.parse(list(argv))
    assert isinstance(settings, AgentConfig)
    return settings.cp_urls


def test_one_url_is_the_one_dialled() -> None:
    assert urls_of(*SECURE, "--cp-url", "wss://cp:8443/ws") == ("wss://cp:8443/ws",)


def test_several_urls_are_kept_in_the_order_given() -> None:
    given = ["--cp-url", "wss://cp-2:8443/ws", "--cp-url", "wss://cp-1:8443/ws"]
    assert urls_of(*SECURE, *given) == ("wss://cp-2:8443/ws", "wss://cp-1:8443/ws")


def test_the_environment_gives_several_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSPORTER_CP_URL", "wss://cp-1:8443/ws, wss://cp-2:8443/ws,")
    assert urls_of(*SECURE) == ("wss://cp-1:8443/ws", "wss://cp-2:8443/ws")
    # The flag wins over the variable, as for every flag.
    assert urls_of(*SECURE, "--cp-url", "wss://cp-3/ws") == ("wss://cp-3/ws",)


def test_plain_urls_are_allowed_with_the_switch_only() -> None:
    assert urls_of(*PLAIN, "--cp-url", "ws://a/ws", "--cp-url", "ws://b/ws") == (
        "ws://a/ws",
        "ws://b/ws",
    )


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.parse(list(argv))
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (
            [*SECURE, "--cp-url", "wss://cp-1/ws", "--cp-url", "https://cp-2/ws"],
            "--cp-url: 'https://cp-2/ws' is not a ws:// or wss:// URL with a host",
        ),
        (
            [*SECURE, "--cp-url", "wss://cp-1/ws", "--cp-url", "wss:///ws"],
            "'wss:///ws' is not a ws:// or wss:// URL with a host",
        ),
        (
            [*SECURE, "--cp-url", "wss://cp-1/ws", "--cp-url", "wss://cp-1/ws"],
            "--cp-url: wss://cp-1/ws is given twice",
        ),
        (
            [*SECURE, "--cp-url", "wss://cp-1/ws", "--cp-url", "ws://cp-2/ws"],
            "--cp-url (ws://cp-2/ws): ws:// is plain, unauthenticated WebSocket",
        ),
        (
            # Plain and secure together: the secure one needs the bundle.
            [*PLAIN, "--cp-url", "ws://cp-1/ws", "--cp-url", "wss://cp-2/ws"],
            "--bundle is required",
        ),
        (
            [
                *SECURE,
                *(arg for n in range(MAX_CP_URLS + 1) for arg in ("--cp-url", f"wss://c{n}/ws")),
            ],
            f"--cp-url: {MAX_CP_URLS + 1} URLs given, at most {MAX_CP_URLS}",
        ),
    ],
)
def test_a_bad_list_of_urls_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    assert complaint in refusal(capsys, *argv)


def test_a_bad_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRANSPORTER_CP_URL", "wss://cp-1/ws,cp-2:8443")
    line = refusal(capsys, *SECURE)
    assert "TRANSPORTER_CP_URL: 'cp-2:8443' is not a ws:// or wss:// URL" in line
