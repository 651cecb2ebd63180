"""Everything that talks to a Kubernetes API server: the only package that imports kubernetes.

The agent works through :class:`KubeTarget`: ``plan`` (validating), ``apply`` (applying),
``verify`` (verifying) and ``delete``. Nothing of the kubernetes client leaks out: errors are
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
