"""Defence in depth: with ``--impersonate producer`` the agent acts as each event's producer,
so the cluster's own RBAC decides what each producer may do there, behind the agent's policy.
A producer allowed in one namespace only gets the API server's 403 everywhere else."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.bed.harness import Agent, ControlPlane, finish
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, deployment_yaml, event_body
from tests.bed.rbac import apply_as_admin, in_thread
from transporter.protocol.model import EventState, ResourceStatus
from transporter.security.tokens import Role


def namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


async def test_each_producer_may_do_what_the_clusters_rbac_lets_its_user_do(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    suffix = uuid.uuid4().hex[:6]
    team_a, team_b, producer = f"team-a-{suffix}", f"team-b-{suffix}", f"dev-{suffix}"
    user = f"transporter:token:{producer}"
    await in_thread(
        apply_as_admin,
        cluster,
        namespace(team_a),
        namespace(team_b),
        f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: configmaps, namespace: {team_a}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, create, patch, update]}}]
""",
        f"""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: configmaps, namespace: {team_a}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{user}"}}]
""",
    )
    agent = make_agent(cluster, impersonate=True)
    await agent.start(cp.agent_url)
    token = await cp.new_token(producer, Role.SUBMIT, (agent.agent_id,))
    client = cp.client_with(token)

    async def run(*manifests: str) -> tuple[EventState, list[str]]:
        submitted = await client.submit(event_body(agent.agent_id, *manifests))
        record = await finish(cp, submitted.event_id)
        return record.state, [
            r.message for r in record.resources if r.status is ResourceStatus.FAILED
        ]

    state, _ = await run(configmap_yaml("allowed", team_a, colour="blue"))
    assert state is EventState.COMPLETED
    state, failures = await run(configmap_yaml("elsewhere", team_b, colour="blue"))
    assert state is EventState.FAILED
    [message] = failures
    assert "forbidden" in message and f'User "{user}"' in message, message
    # A Deployment is judged by its dry run first: as the producer too, refused there.
    state, failures = await run(deployment_yaml("web", team_a))
    assert state is EventState.FAILED
    [message] = failures
    assert message.startswith("the API server refused a dry run of it: ")
    assert f'User "{user}"' in message
