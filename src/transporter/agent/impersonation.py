"""Acting as an event's producer (``--impersonate producer``), so that the cluster's own RBAC
decides what each producer may do there, behind the agent's policy.

Every request about an event's objects carries Kubernetes' impersonation headers: the user
``transporter:<created_by>`` (``transporter:token:ci-deploy`` for a token named ``ci-deploy``;
``transporter:anonymous`` for an event with no ``created_by``) in the group
``transporter:producers``. ``created_by`` is signed by the control plane with the rest of the
event, so it cannot be changed on the way. The agent's own account then needs ``impersonate``
on those users (``resourceNames``) and that group, and nothing else is needed of it for events.
"""

from __future__ import annotations

import re
from typing import Final

from transporter.protocol.model import Event

USER_PREFIX: Final = "transporter:"
GROUP: Final = "transporter:producers"
ANONYMOUS: Final = "anonymous"
MAX_USER: Final = 253
_PRINTABLE: Final = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
"""What an HTTP header value can carry as is: printable ASCII, single spaces inside."""


class NotImpersonable(ValueError):
    """The event's producer has no name a header can carry."""


def producer_user(event: Event) -> str:
    """The Kubernetes user an event's requests act as."""
    name = event.created_by or ANONYMOUS
    user = USER_PREFIX + name
    if len(user) > MAX_USER or not _PRINTABLE.fullmatch(user):
        raise NotImpersonable(
            f"cannot act as its producer: created_by {name[:64]!r} is not a user name"
            f" (printable ASCII, at most {MAX_USER - len(USER_PREFIX)} characters)"
        )
    return user


def headers_for(event: Event) -> dict[str, str]:
    """The impersonation headers of an event's requests."""
    return {"Impersonate-User": producer_user(event), "Impersonate-Group": GROUP}
