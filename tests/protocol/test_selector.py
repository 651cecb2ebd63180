"""Label selectors (:mod:`transporter.protocol.selector`): a table of what parses to what, what
is refused and what matches; the real API server as the oracle for both; random text that
never raises anything but :class:`SelectorError`."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.bed.configmaps import core_api, create_namespace
from tests.bed.kube import Cluster
from transporter.config.values import ConfigError, parse_label
from transporter.protocol import ids
from transporter.protocol.selector import (
    MAX_REQUIREMENTS,
    MAX_TEXT,
    MAX_VALUES,
    Operator,
    Requirement,
    Selector,
    SelectorError,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("env=prod", "env=prod"),
        ("env==prod", "env==prod"),
        ("env!=prod", "env!=prod"),
        ("env", "env"),
        ("!env", "!env"),
        ("env=", "env="),
        ("env in (us,eu,us)", "env in (eu,us)"),
        ("env notin(b , a)", "env notin (a,b)"),
        ("env in ()", "env in ()"),
        ("env in (,)", "env in ()"),
        ("env in (a,)", "env in (,a)"),
        ("env in (,a)", "env in (,a)"),
        ("env in (a,,b)", "env in (,a,b)"),
        ("env in (a,,)", "env in (,a)"),
        ("env in (,,,)", "env in ()"),
        (" \tz = 1 ,\r\n a ", "a,z=1"),
        ("region in (eu,us),env=prod,!legacy", "env=prod,!legacy,region in (eu,us)"),
        ("in in (in,notin)", "in in (in,notin)"),
        ("notin", "notin"),
        ("!in,a=in", "a=in,!in"),
        ("example.com/team=platform", "example.com/team=platform"),
        ("a.b-c.d/X_y.z-1=V.a_l-1", "a.b-c.d/X_y.z-1=V.a_l-1"),
        ("n>007,n<10", "n>007,n<10"),
        ("b=2,a=1,b=1", "a=1,b=2,b=1"),
    ],
)
def test_a_valid_selector_parses_to_its_canonical_form(text: str, canonical: str) -> None:
    selector = Selector.parse(text)
    assert str(selector) == canonical
    assert Selector.parse(str(selector)) == selector


def test_the_parsed_requirements() -> None:
    assert Selector.parse("b notin (y,x), !a").requirements == (
        Requirement("a", Operator.DOES_NOT_EXIST),
        Requirement("b", Operator.NOT_IN, ("x", "y")),
    )
    assert Selector.parse("").selects_everything


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("env=prod,", "position 10: found the end, expected '!' or an identifier after ','"),
        (",env", "position 1: found ','"),
        ("env,,a", "position 5: found ','"),
        ("env in (prod", "found the end, expected ',' or ')'"),
        ("env in prod", "found 'prod', expected '('"),
        ("env in", "found the end, expected '('"),
        ("env notin", "found the end, expected '('"),
        ("env in (a,b,=)", "found '=', expected ',' or an identifier"),
        ("env in (a b)", "found 'b', expected ',' or ')'"),
        ("env in (=)", "found '=', expected ',', ')' or an identifier"),
        ("env==prod==x", "found '==', expected ',' or the end"),
        ("!env=prod", "position 5: found '='"),
        ("!!env", "position 2: found '!', expected an identifier"),
        ("env=pr od", "found 'od'"),
        ("=prod", "position 1: found '='"),
        ("(env)", "found '('"),
        ("env!", "found '!', expected one of"),
        ("env = = prod", "found '=', expected an identifier"),
        ("a/b/c=d", "requirement 'a/b/c' (at position 1): label key 'a/b/c' has more than one '/'"),
        ("x,Example.com/x=y", "requirement 'Example.com/x' (at position 3): label key"),
        ("a..b/c", "prefix must be a DNS subdomain"),
        ("/c", "prefix must be a DNS subdomain"),
        ("c/", "its name must be"),
        ("x" * 64, "its name must be 1-63"),
        ("env=" + "v" * 64, "label value 'vvvv"),
        ("env=-bad", "label value '-bad'"),
        ("env in (ok,bad-)", "requirement 'env in (ok,bad-)' (at position 1): label value 'bad-'"),
        ("n>abc", "the value of > must be an integer"),
        ("n<", "the value of < must be an integer"),
        ("n>-1", "label value '-1'"),
        ("n>99999999999999999999", "the value of > must be an integer"),
        ("env=pr\u00e9d", "unexpected character U+00E9 at position 7"),
        ("env=a\x00", "unexpected character U+0000 at position 6"),
        ("env=\va", "unexpected character U+000B"),
    ],
)
def test_an_invalid_selector_is_refused_saying_where(text: str, words: str) -> None:
    with pytest.raises(SelectorError, match=r"^label selector ") as refused:
        Selector.parse(text)
    message = str(refused.value)
    assert words in message
    assert "\n" not in message


def test_the_bounds() -> None:
    Selector.parse(",".join(f"k{n}" for n in range(MAX_REQUIREMENTS)))
    with pytest.raises(SelectorError, match=f"more than {MAX_REQUIREMENTS} requirements"):
        Selector.parse(",".join(f"k{n}" for n in range(MAX_REQUIREMENTS + 1)))
    Selector.parse(f"k in ({','.join(str(n) for n in range(MAX_VALUES))})")
    with pytest.raises(SelectorError, match=f"65 values in a set \\(at most {MAX_VALUES}\\)"):
        Selector.parse(f"k in ({','.join(str(n) for n in range(MAX_VALUES + 1))})")
    Selector.parse(" " * (MAX_TEXT - 1) + "k")
    with pytest.raises(SelectorError, match=f"of {MAX_TEXT + 1} characters"):
        Selector.parse(" " * MAX_TEXT + "k")
    with pytest.raises(SelectorError, match="is text, not int"):
        Selector.parse(5)  # type: ignore[arg-type]
    long_value = "v" * 10_000
    with pytest.raises(SelectorError) as refused:
        Selector.parse("k=" + long_value[: MAX_TEXT - 2])
    assert len(str(refused.value)) < 600


LABELS = {"env": "prod", "region": "eu", "n": "5", "empty": ""}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("env=prod", True),
        ("env==prod", True),
        ("env=dev", False),
        ("env!=dev", True),
        ("missing!=x", True),
        ("missing=x", False),
        ("env", True),
        ("!env", False),
        ("!missing", True),
        ("empty=", True),
        ("empty", True),
        ("missing=", False),
        ("env in (dev,prod)", True),
        ("env notin (dev,prod)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("empty in (,x)", True),
        ("empty notin ()", False),
        ("n>4", True),
        ("n>5", False),
        ("n<6", True),
        ("n<0005", False),
        ("env>1", False),
        ("missing<9", False),
        ("env=prod,region=eu,!legacy", True),
        ("env=prod,region=us", False),
    ],
)
def test_matches(text: str, matches: bool) -> None:
    assert Selector.parse(text).matches(LABELS) is matches


def test_numbers_beyond_64_bits_never_match() -> None:
    assert not Selector.parse("n>1").matches({"n": "9" * 5000})
    assert not Selector.parse("n<1").matches({"n": "-" + "9" * 30})
    assert Selector.parse("n<1").matches({"n": "-9223372036854775808"})
    assert Selector.parse("n>1").matches({"n": "+00000000000000000000000002"})


def test_agent_labels_share_the_key_and_value_rules() -> None:
    assert parse_label("example.com/ring=") == ("example.com/ring", "")
    assert ids.check_label_key("a.b/C_d") == "a.b/C_d"
    for bad in ("a..b/c=d", "A/b=c", "a/b/c=d", "-a=b", "a=b-", f"{'p' * 254}/a=b", "a"):
        with pytest.raises(ConfigError):
            parse_label(bad)


ALPHABET = "ab=!(),<> \t\n/.-_in0\x00\u00e9\v"
KEYWORDS = ["in", "notin", " in ", "(", ")", ",", "!=", "==", "k"]


def _parsed(text: str) -> Selector | str:
    """The selector, or the message of the SelectorError (any other exception fails)."""
    try:
        return Selector.parse(text)
    except SelectorError as exc:
        return str(exc)


def test_random_text_raises_only_selector_errors() -> None:
    rng = random.Random(13)
    parsed = 0
    for _ in range(20_000):
        pieces = rng.choices([*ALPHABET, *KEYWORDS], k=rng.randrange(0, 24))
        selector = _parsed("".join(pieces))
        if isinstance(selector, str):
            assert "\n" not in selector
            continue
        parsed += 1
        assert Selector.parse(str(selector)) == selector
        selector.matches({"a": "b", "in": "", "k": "0"})
    assert parsed > 100


# The oracle: the real API server's labelSelector over ConfigMaps labelled as agents are.

OBJECTS: dict[str, dict[str, str]] = {
    "prod-eu": {"env": "prod", "region": "eu", "tier": "web"},
    "prod-us": {"env": "prod", "region": "us", "tier": "db"},
    "staging-eu": {"env": "staging", "region": "eu", "legacy": "true"},
    "dev": {"env": "dev"},
    "empty-env": {"env": "", "region": "ap"},
    "no-labels": {},
    "prefixed": {"example.com/team": "platform", "env": "prod", "transporter.dev/ring": "canary"},
    "early": {"transporter.dev/ring": "early", "region": "us"},
    "numbers": {"replicas": "5", "version": "010"},
    "big": {"replicas": "12", "env": "prod"},
    "keywords": {"in": "notin", "notin": "in"},
    "mixed": {"App.Name": "My_App-1", "tier": "Web"},
}

VALID = [
    "",
    "env=prod",
    "env==prod",
    "env!=prod",
    "env",
    "!env",
    "env=",
    "env!=",
    "env==",
    "env in (prod,staging)",
    "env notin (prod,staging)",
    "env in ()",
    "env in (,prod)",
    "env in (prod,)",
    "env notin ()",
    "env in (prod,,dev)",
    "env in (prod,,)",
    "env notin (,,prod,,)",
    " env = prod ",
    "\tenv\t=\tprod\n",
    "env=prod,region=eu",
    "env=prod , region in ( eu, us )",
    "env=prod,region in (eu,us),!legacy",
    "env in(prod)",
    "env notin(prod)",
    "example.com/team=platform",
    "transporter.dev/ring in (canary,early)",
    "!transporter.dev/ring",
    "transporter.dev/ring",
    "replicas>4",
    "replicas<6",
    "replicas>5",
    "replicas>00004",
    "version>9",
    "version<11",
    "in",
    "in=notin",
    "notin in (in)",
    "in notin (notin)",
    "!in",
    "App.Name=My_App-1",
    "tier=Web",
    "tier=web",
    "env in (prod),env!=prod",
    "env,region",
    "!env,!region",
    "legacy=true,legacy",
    "region notin (eu),env",
    "env=prod,!legacy,region!=us",
]

INVALID = [
    "env=prod,",
    ",env",
    "env,,region",
    "env in (prod",
    "env in prod",
    "env in",
    "env==prod==x",
    "!env=prod",
    "!!env",
    "env=pr od",
    "=prod",
    "env in (a,b,=)",
    "env in (a b)",
    "a/b/c=d",
    "Example.com/x=y",
    "a..b/c",
    "x" * 64,
    "env=" + "v" * 64,
    "env=-bad",
    "replicas>abc",
    "replicas>",
    "(env)",
    "env!",
    "env=prod)",
    "env=pr\u00e9d",
    "env=\va",
    "env in (a\fb)",
]
"""Every one of these is a 400 from the API server too. (Not a NUL: apimachinery's lexer takes
it for the end of the text and ignores what follows; we refuse it.)"""


@pytest.fixture(scope="module")
def labelled(cluster: Cluster) -> Iterator[tuple[k8s.CoreV1Api, str]]:
    """A namespace of its own holding :data:`OBJECTS`, and a client of the cluster."""
    namespace = f"selector-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster.kubeconfig, namespace)
    with core_api(cluster.kubeconfig) as core:
        for name, labels in OBJECTS.items():
            meta = k8s.V1ObjectMeta(name=name, labels=labels)
            core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=meta))
        yield core, namespace


def _all_labels(
    core: k8s.CoreV1Api, namespace: str, selector: str | None = None
) -> dict[str, dict[str, str]]:
    """The ConfigMaps the API server selects (all without ``selector``): name -> labels."""
    found = core.list_namespaced_config_map(namespace, label_selector=selector)
    labelled: dict[str, dict[str, str]] = {}
    for item in found.items:
        assert item.metadata is not None and item.metadata.name is not None
        labelled[item.metadata.name] = dict(item.metadata.labels or {})
    return labelled


def _selected(core: k8s.CoreV1Api, namespace: str, text: str) -> set[str]:
    return set(_all_labels(core, namespace, text))


def _selected_or_status(core: k8s.CoreV1Api, namespace: str, text: str) -> set[str] | int:
    """What the API server selects, or the status of its refusal."""
    try:
        return _selected(core, namespace, text)
    except ApiException as exc:
        return int(exc.status)


@pytest.mark.parametrize("text", VALID)
def test_we_select_what_the_api_server_selects(
    labelled: tuple[k8s.CoreV1Api, str], text: str
) -> None:
    core, namespace = labelled
    selector = Selector.parse(text)
    ours = {
        name for name, labels in _all_labels(core, namespace).items() if selector.matches(labels)
    }
    assert ours == _selected(core, namespace, text)
    assert ours == _selected(core, namespace, str(selector))


@pytest.mark.parametrize("text", INVALID)
def test_we_refuse_what_the_api_server_refuses(
    labelled: tuple[k8s.CoreV1Api, str], text: str
) -> None:
    core, namespace = labelled
    with pytest.raises(ApiException) as refused:
        _selected(core, namespace, text)
    assert refused.value.status == 400
    with pytest.raises(SelectorError):
        Selector.parse(text)


PIECES = [
    "env",
    "prod",
    "region",
    "eu",
    "us",
    "replicas",
    "5",
    "in",
    "notin",
    "legacy",
    "Env",
    "example.com/team",
    "platform",
    "=",
    "==",
    "!=",
    "!",
    ">",
    "<",
    "(",
    ")",
    ",",
    " ",
    "\t",
    "-",
]


def test_random_selectors_agree_with_the_api_server(
    labelled: tuple[k8s.CoreV1Api, str],
) -> None:
    core, namespace = labelled
    labels = _all_labels(core, namespace)
    rng = random.Random(1313)
    accepted = 0
    for _ in range(300):
        text = "".join(rng.choices(PIECES, k=rng.randrange(1, 9)))
        theirs = _selected_or_status(core, namespace, text)
        selector = _parsed(text)
        if isinstance(selector, str):
            assert theirs == 400, f"we refuse {text!r}, the API server answers {theirs}"
            continue
        assert isinstance(theirs, set), f"we take {text!r}, the API server answers {theirs}"
        assert theirs == {name for name, have in labels.items() if selector.matches(have)}, text
        accepted += 1
    assert accepted > 30
