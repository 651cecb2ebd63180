"""What signing events costs: the control plane's sign and the agent's verify, per event, for a
typical event and for large ones (the canonical bytes, SHA-256 of each manifest and Ed25519).

    .venv/bin/python bench/signing.py [--seconds 2]

In process, the product's own functions (``transporter.protocol.signing``); the median of
repeated rounds, each of at least ``--seconds`` / 5. Prints figures. ``sign`` is the control
plane's and ``verify`` the agent's (OpenSSL's libcrypto through ctypes,
:mod:`transporter.security.ed25519`); ``cryptography`` is the same check with that library,
for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transporter.protocol import signing
from transporter.protocol.model import Event, K8sPayload
from transporter.security.ed25519 import PrivateKey, PublicKey

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: team-a
  labels:
    app: web
data:
  settings.yaml: |
{body}
"""


def configmap(name: str, size: int) -> str:
    line = "    key: " + "v" * 70 + "\n"
    return CONFIGMAP.format(name=name, body=line * max(1, size // len(line)))


def event(manifests: int, size: int) -> Event:
    return Event(
        id="bench-event",
        target_agent="site-1",
        payload=K8sPayload(tuple(configmap(f"cm-{n}", size) for n in range(manifests))),
        ttl=86_400,
        created_at=time.time(),
        labels={"team": "a"},
        created_by="token:ci",
    )


class WithCryptography:
    """The control plane's library as a :class:`transporter.protocol.signing.Verifier`."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self.key = key

    def verifies(self, signature: bytes, message: bytes, /) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def per_call(call: Callable[[], object], seconds: float) -> float:
    """Median seconds per call over 5 rounds of about ``seconds / 5`` each."""
    rounds = []
    for _ in range(5):
        count, start = 0, time.perf_counter()
        while True:
            call()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 5:
                break
        rounds.append(elapsed / count)
    return statistics.median(rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure")
    args = parser.parse_args()
    generated = Ed25519PrivateKey.generate()
    key = PrivateKey(generated.private_bytes_raw())  # the control plane's, through libcrypto
    public = PublicKey(key.public_raw)
    theirs = WithCryptography(generated.public_key())
    cases = [
        ("typical: 3 manifests, 1 KiB", event(3, 300)),
        ("large: 50 manifests, 1 MiB", event(50, 20_000)),
        ("largest: 500 manifests, 3 MiB", event(500, 6_200)),
    ]
    print(
        f"{'event':34} {'bytes':>9} {'sign µs':>10} {'verify µs':>10} {'canonical µs':>13}"
        f" {'cryptography':>13}"
    )
    print(f"{'':34} {'':>9} {'':>10} {'':>10} {'(part of both)':>13} {'verify µs':>13}")
    for label, unsigned in cases:
        size = sum(len(text) for text in unsigned.payload.manifests)
        signed = signing.sign(unsigned, key)
        sign = per_call(partial(signing.sign, unsigned, key), args.seconds)
        verify = per_call(partial(signing.verify, signed, public), args.seconds)
        canonical = per_call(partial(signing.canonical, unsigned), args.seconds)
        compared = per_call(partial(signing.verify, signed, theirs), args.seconds)
        print(
            f"{label:34} {size:9d} {sign * 1e6:10.1f} {verify * 1e6:10.1f} {canonical * 1e6:13.1f}"
            f" {compared * 1e6:13.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
