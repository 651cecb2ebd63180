"""Everything that talks to a Kubernetes API server, with no Kubernetes client library.

It reads kubeconfigs, the in-cluster service account and exec credential plugins itself, and
speaks HTTP to the API server with its own client (:mod:`~transporter.kube.client`, on the
standard library's :mod:`http.client` and :mod:`ssl`). The agent works through
:class:`KubeTarget`: ``plan`` (validating), ``apply`` (applying), ``verify`` (verifying),
``delete``, and ``preview`` (a plan's dry run: :mod:`~transporter.kube.preview`). Errors are
the classes of :mod:`transporter.kube.errors`, named by whose fault it is.
"""

from transporter.kube.errors import (
    DependencyFailed,
    KubeConfigError,
    KubeError,
    KubeNotFound,
    KubeNotReady,
    KubeRejected,
    KubeUnavailable,
    ManifestError,
)
from transporter.kube.inspect import Seen
from transporter.kube.plan import Applied, Plan, PlannedObject
from transporter.kube.retry import RetryPolicy
from transporter.kube.target import KubeTarget

__all__ = [
    "Applied",
    "DependencyFailed",
    "KubeConfigError",
    "KubeError",
    "KubeNotFound",
    "KubeNotReady",
    "KubeRejected",
    "KubeTarget",
    "KubeUnavailable",
    "ManifestError",
    "Plan",
    "PlannedObject",
    "RetryPolicy",
    "Seen",
]
