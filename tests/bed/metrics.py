"""Scraping ``/metrics`` as Prometheus does, over real HTTP, and reading the answer with the
client library's own parser; and an agent process that serves its metrics
(``--metrics-listen``) on a free port."""

from __future__ import annotations

import contextlib
import http.client
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs
from prometheus_client.parser import text_string_to_metric_families

from tests.bed.process import Child, started
from tests.bed.producer import ApiAccess
from tests.bed.roles import REGISTERED, agent_argv, clean_environment

METRICS_LISTENING = re.compile(r"metrics listening on (http://\S+)")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@attrs.frozen
class Scrape:
    status: int
    content_type: str
    text: str

    @property
    def samples(self) -> Samples:
        assert self.status == 200, (self.status, self.text)
        return Samples.parse(self.text)


@attrs.frozen
class Samples:
    """Every sample of an exposition, by its name (``…_total``, ``…_bucket`` …) and labels;
    and each family's type."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Samples:
        values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                values[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(values, types)

    def get(self, name: str, **labels: str) -> float:
        """The value of one sample; a sample that is not there fails the test."""
        key = (name, frozenset(labels.items()))
        assert key in self.values, f"no sample {name}{labels}: {sorted(self.names())}"
        return self.values[key]

    def names(self) -> set[str]:
        return {name for name, _ in self.values}

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.values if sample == name]


def scrape(
    url: str,
    *,
    api: ApiAccess | None = None,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Scrape:
    """``GET url`` (``api``: on the control plane's API, with ``token`` when given)."""
    parts = urlsplit(url)
    if api is not None:
        connection = api.connection(timeout=30)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    try:
        connection.request("GET", parts.path or "/", headers=sent)
        answer = connection.getresponse()
        text = answer.read().decode()
        return Scrape(answer.status, answer.getheader("Content-Type") or "", text)
    finally:
        connection.close()


@contextlib.contextmanager
def agent_with_metrics(
    agent_id: str, cp_url: str, bundle: Path, kubeconfig: Path
) -> Iterator[tuple[Child, str]]:
    """``transporter agent --metrics-listen 127.0.0.1:0`` registered with the control plane at
    ``cp_url``: the process and the URL of its metrics."""
    argv = [*agent_argv(agent_id, cp_url, bundle, kubeconfig), "--metrics-listen", "127.0.0.1:0"]
    patterns = (METRICS_LISTENING, REGISTERED)
    with started(argv, *patterns, env=clean_environment()) as (process, (url, _)):
        yield process, url
