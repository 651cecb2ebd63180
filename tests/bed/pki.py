"""The agent channel's credentials for tests: a CA and an event-signing key, made with the
product's own code (``transporter.cp.pki``, ``transporter.cp.signing_key``), and agents' bundles
issued from them (``transporter.cp.admin.bundles``).

Control planes started by tests are given this CA and key as files (``--ca-cert``, ``--ca-key``,
``--signing-key``), the way replicas share theirs; so any agent, whichever control plane it
dials (or through whichever fault proxy), gets a bundle it will accept. One :func:`shared` set
is made per test run, at its first use (making keys is slow); a test that needs a CA of its own
(a wrong one) makes another with :meth:`TestPki.create`.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import shutil
import ssl
import tempfile
import weakref
from pathlib import Path

import attrs

from transporter.agent.bundle import Bundle, load_bundle
from transporter.config.cp import ChannelSecurity
from transporter.cp.admin.bundles import write_bundle
from transporter.cp.key_files import open_signing_key
from transporter.cp.pki import CA_CERT_FILE, CA_KEY_FILE, Authority, open_authority
from transporter.cp.signing_key import SIGNING_KEY_FILE, EventSigner


@attrs.define
class TestPki:
    folder: Path
    authority: Authority
    signer: EventSigner
    _bundles: itertools.count[int] = attrs.field(factory=itertools.count)

    __test__ = False  # not a test class, whatever pytest thinks of its name

    @classmethod
    def create(cls, folder: Path) -> TestPki:
        """A new CA and signing key in ``folder``, as a control plane's first start makes them."""
        authority, _ = open_authority(folder, create=True)
        signer, _ = open_signing_key(folder, create=True)
        return cls(folder, authority, signer)

    @classmethod
    def temporary(cls) -> TestPki:
        """A new CA and signing key in a temporary folder of their own, removed when the object
        goes (at the latest when the interpreter exits)."""
        folder = Path(tempfile.mkdtemp(prefix="transporter-test-pki-"))
        made = cls.create(folder)
        weakref.finalize(made, shutil.rmtree, folder, ignore_errors=True)
        return made

    @property
    def ca_cert(self) -> Path:
        return self.folder / CA_CERT_FILE

    @property
    def ca_key(self) -> Path:
        return self.folder / CA_KEY_FILE

    @property
    def signing_key(self) -> Path:
        return self.folder / SIGNING_KEY_FILE

    def security(self, *, insecure_plain_ws: bool = False) -> ChannelSecurity:
        """A control plane's settings for this CA and key."""
        return ChannelSecurity(
            ca_cert=self.ca_cert,
            ca_key=self.ca_key,
            signing_key=self.signing_key,
            insecure_plain_ws=insecure_plain_ws,
        )

    def cp_flags(self) -> list[str]:
        """The same, as ``transporter cp`` flags."""
        return [
            "--ca-cert",
            str(self.ca_cert),
            "--ca-key",
            str(self.ca_key),
            "--signing-key",
            str(self.signing_key),
        ]

    def bundle_dir(
        self, agent_id: str, *, days: float = 30, now: datetime.datetime | None = None
    ) -> Path:
        """A new bundle for ``agent_id`` (``now`` in the past: one that has expired)."""
        out = self.folder / "bundles" / f"{agent_id}-{next(self._bundles)}"
        write_bundle(self.authority, self.signer, agent_id, out, days=days, now=now)
        return out

    def bundle(
        self, agent_id: str, *, days: float = 30, now: datetime.datetime | None = None
    ) -> Bundle:
        return load_bundle(self.bundle_dir(agent_id, days=days, now=now))

    def client_context(self, agent_id: str) -> ssl.SSLContext:
        return self.bundle(agent_id).ssl_context()


@functools.cache
def shared() -> TestPki:
    """The test run's CA and signing key: made at the first call, the same object after."""
    return TestPki.temporary()
