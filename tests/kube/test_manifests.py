"""Parsing and validating manifests: pure, no cluster."""

from __future__ import annotations

import pytest

from transporter.kube import ManifestError
from transporter.kube.manifests import MAX_TOTAL_CHARS, parse_manifests
from transporter.protocol import yaml_reader
from transporter.protocol.yaml_reader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_EXPANDED_BYTES

LOADERS = [
    pytest.param(yaml_reader.C_LOADER, id="libyaml"),
    pytest.param(yaml_reader.PythonLoader, id="python"),
]


@pytest.fixture(autouse=True, params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the libyaml parser and with the pure-Python one."""
    if request.param is None:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml_reader, "LOADER", request.param)


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  colour: blue
"""


def test_several_documents_in_several_manifests_come_out_in_order() -> None:
    second = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
    objects = parse_manifests([CONFIGMAP + "---\n" + second, second.replace("web", "api")])
    assert [(o.api_version, o.kind, o.name, o.namespace) for o in objects] == [
        ("v1", "ConfigMap", "settings", "team"),
        ("apps/v1", "Deployment", "web", None),
        ("apps/v1", "Deployment", "api", None),
    ]
    assert objects[0].body["data"] == {"colour": "blue"}
    assert [o.where for o in objects] == [
        "manifest 1, document 1",
        "manifest 1, document 2",
        "manifest 2, document 1",
    ]


def test_empty_documents_and_manifests_are_skipped() -> None:
    text = "---\n# only a comment\n---\n" + CONFIGMAP + "---\n---\n"
    objects = parse_manifests(["", "\n", text])
    assert [o.name for o in objects] == ["settings"]
    assert objects[0].where == "manifest 3, document 2"  # "---" starts a document


def test_a_list_is_expanded_into_its_items() -> None:
    text = """\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
- {apiVersion: v1, kind: Secret, metadata: {name: two}}
"""
    objects = parse_manifests([text])
    assert [(o.kind, o.name, o.where) for o in objects] == [
        ("ConfigMap", "one", "manifest 1, document 1, item 1"),
        ("Secret", "two", "manifest 1, document 1, item 2"),
    ]


def test_items_of_a_typed_list_take_its_kind_when_they_give_none() -> None:
    text = """\
apiVersion: v1
kind: ConfigMapList
items:
- metadata: {name: one}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}
"""
    objects = parse_manifests([text])
    assert [(o.api_version, o.kind, o.name) for o in objects] == [
        ("v1", "ConfigMap", "one"),
        ("v1", "ConfigMap", "two"),
    ]


def test_values_stay_json_shaped_like_kubectl_makes_them() -> None:
    text = CONFIGMAP + "  date: 2024-05-01\n  1: numbered\n  true: flag\n  empty: null\n"
    body = parse_manifests([text])[0].body
    assert body["data"] == {
        "colour": "blue",
        "date": "2024-05-01",  # not a datetime: JSON could not carry it
        "1": "numbered",
        "true": "flag",
        "empty": None,
    }


def test_the_body_does_not_show_in_repr() -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: hunter2}\n"
    assert "hunter2" not in repr(parse_manifests([secret]))


def _problem(*manifests: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifests(list(manifests))
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "manifest 1, document 1: expected a mapping (an object), got a list"),
        ("just words\n", "manifest 1, document 1: expected a mapping (an object), got a string"),
        ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion is missing"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "kind is missing"),
        ("apiVersion: v1\nkind: ConfigMap\n", "metadata is missing"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n", "metadata must be a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n", "metadata.name is missing"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 42}\n",
            "metadata.name must be a string",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n", "generateName"),
        ("apiVersion: 1\nkind: ConfigMap\nmetadata: {name: a}\n", "apiVersion must be a string"),
        ("apiVersion: a/b/c\nkind: ConfigMap\nmetadata: {name: a}\n", "[group/]version"),
        ("apiVersion: v1\nkind: Config Map\nmetadata: {name: a}\n", "not a valid kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../x}\n", "may not contain '/'"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ..}\n", "may not be '..'"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: a%2fb}\n",
            "metadata.namespace may not contain '%'",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: .nan}\n", "data.x"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
            "binaryData: {x: !!binary AAAA}\n",
            "binaryData.x: a value of type bytes is not allowed",
        ),
    ],
)
def test_an_invalid_object_is_refused_with_its_problem(text: str, expected: str) -> None:
    assert expected in _problem(text)


def test_the_problem_names_the_manifest_document_and_item() -> None:
    items = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n"
    assert _problem(CONFIGMAP, CONFIGMAP + "---\n" + items) == (
        "manifest 2, document 2, item 1: metadata is missing"
    )


def test_invalid_yaml_says_where_without_quoting_the_document() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: hunter2\n"
    problem = _problem(CONFIGMAP, text)
    assert problem.startswith("manifest 2, document 1: not valid YAML: ")
    assert "line 5" in problem
    assert "hunter2" not in problem


def test_a_yaml_error_in_a_later_document_names_that_document() -> None:
    assert _problem(CONFIGMAP + "---\nkey: [unclosed\n").startswith(
        "manifest 1, document 2: not valid YAML"
    )


def test_small_yaml_aliases_are_expanded_as_kubectl_does() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: &labels {app: web}}
spec:
  selector: {matchLabels: *labels}
  template:
    metadata: {labels: {<<: *labels, tier: front, app: web2}}
"""
    body = parse_manifests([text])[0].body
    assert body["spec"]["selector"]["matchLabels"] == {"app": "web"}
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "web2", "tier": "front"}


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        levels.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]")
    bomb = CONFIGMAP + "---\n" + "\n".join(levels) + "\n"
    assert _problem(bomb).startswith(
        f"manifest 1, document 2: YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"
        " at line 13, column "
    )


def test_the_alias_budget_is_shared_by_all_manifests() -> None:
    values = "a: &a [" + ", ".join(["x"] * 999) + "]\n" + "b: [" + ", ".join(["*a"] * 40) + "]\n"
    fine = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx:\n  " + values.replace(
        "\n", "\n  "
    )
    assert len(parse_manifests([fine, fine])) == 2  # 2 x 40 000 nodes from aliases
    assert _problem(fine, fine, fine).startswith("manifest 3, document 1: YAML aliases expand")


def test_an_alias_to_its_own_enclosing_node_is_refused() -> None:
    assert "alias *loop refers to itself" in _problem("a: &loop [1, *loop]\n")


def test_an_undefined_alias_is_invalid_yaml() -> None:
    assert "found undefined alias 'nothing'" in _problem("a: *nothing\n")


def test_aliases_count_towards_the_depth_bound() -> None:
    half = "[" * 60 + "]" * 60
    assert f"nested deeper than {MAX_DEPTH} levels" in _problem(
        f"a: &deep {half}\nb: " + "[" * 60 + "*deep" + "]" * 60 + "\n"
    )


def test_deep_nesting_is_refused_before_it_is_built() -> None:
    assert f"nested deeper than {MAX_DEPTH} levels" in _problem("[" * 150 + "]" * 150)
    shallow = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx: " + "[" * 50 + "]" * 50
    assert len(parse_manifests([shallow])) == 1


def test_very_deep_nesting_costs_no_recursion() -> None:
    # libyaml stops at its own limit (1000) first; the pure-Python parser at ours.
    problem = _problem("[" * 100_000 + "]" * 100_000)
    assert "nested deeper than" in problem or "exceeded maximum nesting depth" in problem


def test_duplicate_keys_are_refused_also_when_json_would_merge_them() -> None:
    assert "duplicate key 'name'" in _problem("metadata:\n  name: a\n  name: b\n")
    assert "duplicate key '1'" in _problem("data:\n  1: a\n  '1': b\n")


def test_complex_keys_are_refused() -> None:
    assert "a key of type dict is not allowed" in _problem("? {a: 1}\n: x\n")


def test_unknown_tags_are_refused() -> None:
    assert "could not determine a constructor for the tag '!vault'" in _problem("a: !vault x\n")


def test_oversized_input_is_refused() -> None:
    assert "exceed" in _problem("#" * (MAX_TOTAL_CHARS + 1))


def test_what_aliases_expand_to_is_bounded_in_bytes() -> None:
    """One 1 MB string aliased 20 times is a 1 MB manifest that would build 20 MB."""
    big = "x" * (1024 * 1024)
    uses = ", ".join(["*big"] * 20)
    manifest = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a, labels: {{a: &big {big}}}}}\n"
    )
    manifest += f"data: {{list: [{uses}]}}\n"
    problem = _problem(manifest)
    assert f"expands to more than {MAX_EXPANDED_BYTES} bytes" in problem
    assert problem.startswith("manifest 1, document 1: YAML")
