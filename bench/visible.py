"""When a ConfigMap's new content became visible on the API server: a watch, as any client or
controller of the cluster would see it (``bench/latency.py``).

The watch is a plain keep-alive HTTPS stream read in a thread, one JSON line per watch event;
the moment a line arrives is taken before it is parsed, so that what the watch adds is the API
server's own delivery (the watch cache), not a client library's decoding.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.bed.kube import Cluster

NAMESPACE = "default"


def _connection(cluster: Cluster, timeout: float | None) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(cluster.certs.ca_cert))
    context.load_cert_chain(str(cluster.certs.admin_cert), str(cluster.certs.admin_key))
    parts = urlsplit(cluster.server)
    return http.client.HTTPSConnection(
        parts.hostname or "", parts.port, timeout=timeout, context=context
    )


class ConfigMapWatch:
    """The first moment (``time.perf_counter()``) each ConfigMap of ``default`` was seen with
    each value of its ``data.n``, by one watch on the namespace's ConfigMaps."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._seen: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()
        self._watching = threading.Event()
        self._stopping = threading.Event()
        self._connection: http.client.HTTPSConnection | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def start(self) -> None:
        """Start watching; return once the API server has answered the watch."""
        self._thread.start()
        if not self._watching.wait(30):
            raise RuntimeError(f"no watch within 30 s: {self._failure!r}")

    def stop(self) -> None:
        self._stopping.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def seen(self, name: str, n: int, timeout: float = 30.0) -> float:
        """When ``name`` was first seen with ``data.n == n``; waits for it up to ``timeout``."""
        key = (name, str(n))
        with self._changed:
            if not self._changed.wait_for(lambda: key in self._seen, timeout):
                raise TimeoutError(f"{name} with n={n} not seen in {timeout} s ({self._failure!r})")
            return self._seen[key]

    def _run(self) -> None:
        version = ""
        while not self._stopping.is_set():
            try:
                version = self._watch(version)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if self._stopping.is_set():
                    return
                self._failure = exc
                time.sleep(0.1)

    def _watch(self, version: str) -> str:
        """One watch request, resumed from ``version``; returns the last version seen."""
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=1&timeoutSeconds=3600"
        if version:
            path += f"&resourceVersion={version}"
        self._connection = connection = _connection(self._cluster, None)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            answer = connection.getresponse()
            if answer.status != 200:
                raise ValueError(f"watch answered {answer.status}: {answer.read()[:200]!r}")
            self._watching.set()
            while line := answer.readline():
                at = time.perf_counter()
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":  # too old a version: start afresh
                    return ""
                metadata = obj.get("metadata") or {}
                version = metadata.get("resourceVersion", version)
                n = (obj.get("data") or {}).get("n")
                if event.get("type") in ("ADDED", "MODIFIED") and n is not None:
                    with self._changed:
                        self._seen.setdefault((metadata.get("name", ""), n), at)
                        self._changed.notify_all()
            return version
        finally:
            connection.close()


@contextlib.contextmanager
def watching(cluster: Cluster) -> Iterator[ConfigMapWatch]:
    watch = ConfigMapWatch(cluster)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


class RawApply:
    """Server-side applies of ConfigMaps over one keep-alive HTTPS connection, nothing else:
    the floor under any client's apply."""

    def __init__(self, cluster: Cluster) -> None:
        self._connection = _connection(cluster, 30)

    def apply(self, body: dict[str, object]) -> None:
        metadata = body["metadata"]
        assert isinstance(metadata, dict)
        path = (
            f"/api/v1/namespaces/{metadata['namespace']}/configmaps/{metadata['name']}"
            "?fieldManager=bench&force=true"
        )
        self._connection.request(
            "PATCH",
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        )
        answer = self._connection.getresponse()
        text = answer.read()
        if answer.status not in (200, 201):
            raise RuntimeError(f"apply answered {answer.status}: {text[:200]!r}")

    def close(self) -> None:
        self._connection.close()
