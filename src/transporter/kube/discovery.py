"""Which kinds the cluster serves, and where: the discovery API, cached per target.

Only the group-versions a plan mentions are fetched (``/api/v1``, ``/apis/GROUP/VERSION``).
Known kinds stay cached; a kind not found is asked again once per :meth:`Discovery.begin`
(a CRD may have been installed meanwhile), and :meth:`Discovery.forget` drops a group-version
after we changed it (applied a CRD) or the server said it no longer serves it.
"""

from __future__ import annotations

from urllib.parse import quote

import attrs

from transporter.kube.errors import KubeNotFound
from transporter.kube.manifests import api_group, api_version_of
from transporter.kube.transport import Transport


@attrs.frozen
class ResourceInfo:
    """Where objects of one kind live in the API."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return api_version_of(self.group, self.version)

    def object_path(self, name: str, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{quote(namespace, safe='')}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}/{quote(name, safe='')}"


def group_version_path(api_version: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


class Discovery:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._cache: dict[str, dict[str, ResourceInfo]] = {}
        """api_version → kind → resource; an empty dict: the group-version is not served."""
        self._fresh: set[str] = set()
        """Group-versions fetched since :meth:`begin`."""

    def begin(self) -> None:
        """Start a new round: kinds not found are asked for again once."""
        self._fresh.clear()

    def forget(self, api_version: str) -> None:
        self._cache.pop(api_version, None)
        self._fresh.discard(api_version)

    async def resolve(self, api_version: str, kind: str) -> ResourceInfo | None:
        """Where ``kind`` of ``api_version`` lives, or ``None`` if the cluster does not serve it.

        Raises :class:`KubeUnavailable`, or :class:`KubeRejected` if discovery was refused.
        """
        known = self._cache.get(api_version, {}).get(kind)
        if known is not None or api_version in self._fresh:
            return known
        self._cache[api_version] = await self._fetch(api_version)
        self._fresh.add(api_version)
        return self._cache[api_version].get(kind)

    async def _fetch(self, api_version: str) -> dict[str, ResourceInfo]:
        try:
            answer = await self._transport.get(group_version_path(api_version))
        except KubeNotFound:
            return {}
        group, version = api_group(api_version), api_version.rpartition("/")[2]
        found: dict[str, ResourceInfo] = {}
        listed = answer.get("resources")
        for entry in listed if isinstance(listed, list) else []:
            if not isinstance(entry, dict):
                continue
            plural, kind = entry.get("name"), entry.get("kind")
            if not isinstance(plural, str) or not isinstance(kind, str) or "/" in plural:
                continue  # subresources (deployments/scale) are not where objects live
            found.setdefault(
                kind, ResourceInfo(group, version, kind, plural, bool(entry.get("namespaced")))
            )
        return found
