"""The parts of the official Kubernetes client we use, imported without the rest of it.

We speak JSON to the API server through the client's REST layer (urllib3 under the client's TLS,
proxy and kubeconfig handling) and load credentials with its config loaders. ``import
kubernetes`` would also run the package's ``__init__``: the generated API classes, the dynamic
client, watch, stream, informer, leader election, and through ``ApiClient`` pydantic; and the
config loaders import requests and oauthlib for one deprecated auth provider. Together 15 MiB
of an idle agent's 62 (``bench/memory.py``) that the agent never uses.

So, unless the full client is already loaded, the packages of :data:`DEFERRED` are put in
``sys.modules`` without running their ``__init__``; their submodules import as usual. The first
use of any other name of theirs runs the ``__init__`` then, so code that wants the full client
(tests, a user's plugin) still gets it, but for the single file: ``transporter.spec`` leaves the
unused parts out of it.

Tied to the client's module layout (``requirements/lock.txt`` pins it); ``tests/kube/
test_client.py`` checks what is and is not loaded.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

DEFERRED = (
    "kubernetes",
    "kubernetes.client",
    "kubernetes.utils",
    "oauthlib.oauth2",
    "requests_oauthlib",
)
"""Packages whose ``__init__`` waits for the first name it would have defined. The last two
(with ``requests``) serve only the kubeconfig loader's refresh of ``oidc`` auth-provider tokens:
about 6 MiB, loaded on the first such refresh."""

STAND_INS = {
    ("kubernetes.client", "ApiClient"): "kubernetes.client.api_client",
    ("requests_oauthlib", "OAuth2Session"): "requests_oauthlib.oauth2_session",
}
"""Names the config loaders import from deferred packages, and the modules that define them:
while the loaders are imported, each is a function that imports its class when called."""


class _Deferred(types.ModuleType):
    """A package whose ``__init__`` runs when a name missing from it is first looked up."""

    _lock = threading.RLock()  # one package's __init__ may touch another's

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__all__":
            raise AttributeError(name)
        with self._lock:
            if not self.__dict__.get("_transporter_initialised", False):
                self.__dict__["_transporter_initialised"] = True
                spec = self.__spec__
                if spec is None or spec.loader is None:
                    raise AttributeError(name)
                spec.loader.exec_module(self)
        if name in self.__dict__:
            return self.__dict__[name]
        own = self.__dict__.get("__getattr__")  # the package's own lazy names (PEP 562)
        if own is not None:
            return own(name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: importing it fails as it would have
    module = _Deferred(name)
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__file__ = spec.origin
    module.__package__ = name
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _stand_in(module: str, name: str) -> Callable[..., Any]:
    def made(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    made.__qualname__ = made.__name__ = name
    return made


def _import_lean() -> None:
    if "kubernetes" in sys.modules:
        return  # the full client (or this) is loaded already
    for name in DEFERRED:
        _defer(name)
    from kubernetes.client.configuration import Configuration

    # The config loaders do ``from kubernetes.client import ApiClient, Configuration``.
    sys.modules["kubernetes.client"].__dict__["Configuration"] = Configuration
    placed = []
    for (package, name), module in STAND_INS.items():
        found = sys.modules[package]
        if isinstance(found, _Deferred):
            found.__dict__[name] = _stand_in(module, name)
            placed.append((found, name))
    import kubernetes.config  # noqa: F401

    for found, name in placed:  # asked later, the package gives its real class
        del found.__dict__[name]


_import_lean()

from kubernetes.client.configuration import Configuration  # noqa: E402
from kubernetes.client.exceptions import ApiException, OpenApiException  # noqa: E402
from kubernetes.client.rest import RESTClientObject, RESTResponse  # noqa: E402
from kubernetes.config.incluster_config import load_incluster_config  # noqa: E402
from kubernetes.config.kube_config import load_kube_config  # noqa: E402

__all__ = [
    "ApiException",
    "Configuration",
    "OpenApiException",
    "RESTClientObject",
    "RESTResponse",
    "load_incluster_config",
    "load_kube_config",
]
