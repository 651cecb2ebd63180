"""Looking before changing anything, on a real API server: what a forced server-side apply
would leave (a dry run that stores nothing), objects as they are, the RBAC objects a policy
verdict needs, and the agent's own ConfigMaps."""

from __future__ import annotations

from transporter.kube import KubeTarget, Plan, PlannedObject


async def planned(target: KubeTarget, manifest: str) -> PlannedObject:
    plan: Plan = await target.plan([manifest])
    assert not plan.problems, plan.problems
    [obj] = plan.objects
    return obj


async def test_a_patch_is_seen_merged_with_what_the_cluster_holds(target: KubeTarget) -> None:
    """Only subjects, under the built-in binding's name: the dry run's answer binds
    cluster-admin, and the binding itself is untouched."""
    patch = await planned(
        target,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        "metadata: {name: cluster-admin}\nsubjects: [{kind: User, name: mallory}]\n",
    )
    seen = await target.dry_run(patch)
    assert seen.refused is None and seen.body is not None
    assert seen.body["roleRef"]["name"] == "cluster-admin"
    assert seen.body["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    now = await target.current(patch)
    assert now.body is not None
    assert all(subject["name"] != "mallory" for subject in now.body["subjects"])


async def test_an_object_that_cannot_exist_yet_is_seen_as_absent(
    target: KubeTarget, unique: str
) -> None:
    elsewhere = await planned(
        target,
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: none-{unique}}}\n",
    )
    seen = await target.dry_run(elsewhere)
    assert (seen.body, seen.refused) == (None, None)
    assert (await target.current(elsewhere)).body is None


async def test_a_dry_run_the_server_refuses_says_why(target: KubeTarget, unique: str) -> None:
    bad = await planned(
        target,
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c-{unique}}}\ndata: {{k: [1]}}\n",
    )
    seen = await target.dry_run(bad)
    assert seen.body is None and seen.refused is not None
    assert "data" in str(seen.refused)
    assert (await target.current(bad)).body is None  # nothing stored


async def test_rbac_objects_are_read_for_the_policy(target: KubeTarget) -> None:
    admin = await target.read_role("ClusterRole", None, "cluster-admin")
    assert admin is not None and admin["rules"]
    assert await target.read_role("Role", "default", "none-such") is None
    bindings = await target.list_bindings(None)
    assert any(b["metadata"]["name"] == "cluster-admin" for b in bindings)
    assert isinstance(await target.list_bindings("default"), list)
    aggregating = {name for name, _ in await target.aggregation_selectors()}
    assert {"admin", "edit", "view"} <= aggregating


async def test_the_agents_config_maps_take_keys_from_many_writers(
    target: KubeTarget, unique: str
) -> None:
    namespace = f"state-{unique}"
    await target.ensure_namespace(namespace)
    await target.ensure_namespace(namespace)  # again: nothing changes
    labels = {"transporter.dev/ran-by": unique}
    await target.add_to_config_map(namespace, "j", {"a": "1"}, labels)
    await target.add_to_config_map(namespace, "j", {"b": "2"}, labels)
    [found] = await target.list_config_maps(namespace, f"transporter.dev/ran-by={unique}")
    assert found["data"] == {"a": "1", "b": "2"}
    assert await target.list_config_maps(namespace, "transporter.dev/ran-by=other") == []
    await target.delete_config_map(namespace, "j")
    await target.delete_config_map(namespace, "j")  # gone already: fine
    assert await target.list_config_maps(namespace, f"transporter.dev/ran-by={unique}") == []
