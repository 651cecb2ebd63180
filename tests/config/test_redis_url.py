"""Redis store URLs beyond host and port: Sentinels, the replicas a write waits for; bad ones
refused in one line that never shows a password; passwords hidden in what is logged."""

from __future__ import annotations

import pytest

from transporter.config.redis_url import Replication, parse_sentinel, replication_of
from transporter.config.store_spec import StoreSpec
from transporter.config.values import ConfigError


def test_a_sentinel_url_names_its_sentinels_service_and_both_logins() -> None:
    target = parse_sentinel(
        "redis+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380,sentinel-3/orders"
        "?db=2&sentinel_username=watch&sentinel_password=s3cret"
    )
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-3", 26379))
    assert (target.service, target.db, target.tls) == ("orders", 2, False)
    assert (target.username, target.password) == ("app", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == ("watch", "s3cret")
    assert "s3cret" not in repr(target) and "p@ss" not in repr(target)


def test_tls_to_sentinels_and_servers_takes_the_rediss_parameters() -> None:
    target = parse_sentinel("rediss+sentinel://h/orders?ssl_ca_certs=/etc/ca.crt")
    assert target.tls


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", Replication(0)),
        ("redis://h:6379/0?wait_replicas=2&wait_timeout_ms=500", Replication(2, False, 500)),
        ("redis+sentinel://h/s", Replication(1, wait_all=True)),
        ("redis+sentinel://h/s?wait_replicas=all", Replication(1, wait_all=True)),
        ("redis+sentinel://h/s?wait_replicas=1", Replication(1)),
        ("redis+sentinel://h/s?wait_replicas=0", Replication(0)),
    ],
)
def test_what_a_write_waits_for(url: str, expected: Replication) -> None:
    assert replication_of(url) == expected
    StoreSpec.parse(url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis+sentinel://u:hunter2@/orders", "names no Sentinel"),
        ("redis+sentinel://u:hunter2@h1", "names no service"),
        ("redis+sentinel://h1/a/b", "names no service"),
        ("redis+sentinel://u:hunter2@h1:0/s", "bad port in 'h1:0'"),
        ("redis+sentinel://h1:x/s", "bad port"),
        ("redis+sentinel://h1,,h2/s", "empty host"),
        ("redis+sentinel://h/s?retries=3", "unknown parameter 'retries'"),
        ("redis+sentinel://h/s?ssl_ca_certs=/ca", "(TLS needs rediss+sentinel://)"),
        ("redis+sentinel://h/s?wait_replicas=17", "wait_replicas='17': a number from 0 to 16"),
        ("redis://u:hunter2@h/0?wait_replicas=-1", "a number from 0 to 16"),
        ("redis://h/0?wait_replicas=all", "wait_replicas=all needs redis+sentinel://"),
        ("redis://h/0?wait_timeout_ms=0", "wait_timeout_ms='0'"),
        ("redis+sentinel://h/s?db=x", "db='x'"),
        ("rediz://u:hunter2@h/0", "scheme must be"),
    ],
)
def test_a_bad_url_is_refused_in_one_line_without_its_password(url: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreSpec.parse(url)
    message = str(caught.value)
    assert said in message
    assert "hunter2" not in message and "\n" not in message


def test_too_many_sentinels_are_refused() -> None:
    hosts = ",".join(f"h{n}" for n in range(17))
    with pytest.raises(ConfigError, match="more than 16 Sentinels"):
        StoreSpec.parse(f"redis+sentinel://{hosts}/s")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://u:pw@h:1/0?wait_replicas=1", "redis://u:***@h:1/0?wait_replicas=1"),
        (
            "redis+sentinel://u:pw@h1,h2:26380/s?sentinel_password=sec&db=1",
            "redis+sentinel://u:***@h1,h2:26380/s?sentinel_password=***&db=1",
        ),
        ("redis+sentinel://h1/s?db=1", "redis+sentinel://h1/s?db=1"),
        ("redis://h:1/0?password=pw", "redis://h:1/0?password=***"),
        (
            "redis+sentinel://h1/s?sentinel%5Fpassword=sec&db=1",
            "redis+sentinel://h1/s?sentinel_password=***&db=1",
        ),
        ("redis://h/0?Sentinel_Password=sec&db=1", "redis://h/0?Sentinel_Password=***&db=1"),
        ("unix:///run/r.sock?db=0&password=pw", "unix:///run/r.sock?db=0&password=***"),
    ],
)
def test_passwords_are_never_displayed(url: str, shown: str) -> None:
    spec = StoreSpec.parse(url)
    assert spec.display == shown
    assert "pw" not in spec.flags and "sec" not in spec.flags
