"""Loading untrusted YAML with bounds: the YAML half of :mod:`transporter.kube.manifests`.

PyYAML's safe loader, changed so that what it builds is bounded and JSON-shaped:

- aliases are allowed (kubectl allows them, and PyYAML writes them for shared values), but each
  counts as a copy of the node it names against an :class:`AliasBudget` (no "billion laughs"),
  and an alias to a node that encloses it is refused;
- nesting deeper than :data:`MAX_DEPTH` is refused while composing, before anything is built;
- mapping keys become JSON strings at once (``1`` → ``"1"``), and duplicates are refused;
- timestamps stay strings, as kubectl leaves them.

With libyaml (the usual PyYAML wheel) events come from its C parser, about six times faster
than the pure-Python one; composing, where the bounds are kept, is ours either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from transporter.protocol.submission import MAX_YAML_ALIAS_NODES, MAX_YAML_DEPTH

MAX_DEPTH = MAX_YAML_DEPTH
"""Deepest nesting of collections accepted in one document (the control plane refuses deeper
events at submission with the same bound)."""
MAX_ALIAS_NODES = MAX_YAML_ALIAS_NODES
"""Nodes YAML aliases may stand for in one plan, each alias counted as a copy of its target
(the control plane counts them the same way over an event's manifests)."""

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


_CONSTRUCTION_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What PyYAML's constructors raise for a value that does not fit its tag (``!!int abc``)."""


class YamlRefused(yaml.YAMLError):
    """Valid YAML beyond our bounds (or with duplicate keys)."""

    def __init__(self, problem: str, mark: object) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class AliasBudget:
    """How many nodes YAML aliases may still stand for (share one over a plan's manifests)."""

    def __init__(self, nodes: int = MAX_ALIAS_NODES) -> None:
        self.limit = nodes
        self.left = nodes


def json_key(key: Any) -> str:
    """A mapping key as JSON (and kubectl) has it; ValueError for keys that have no such form."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    raise ValueError(f"a key of type {type(key).__name__} is not allowed")


class _Bounded(Composer, SafeConstructor, Resolver):
    """The composer and constructor with our bounds; a parser is mixed in below."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own attribute, replaced whole
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str, budget: AliasBudget) -> None:
        raise NotImplementedError  # the loaders below set up their parser, then call _setup

    if TYPE_CHECKING:  # provided by the parser classes mixed in

        def peek_event(self) -> Any: ...
        def check_data(self) -> bool: ...
        def dispose(self) -> None: ...

    def _setup(self, budget: AliasBudget) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._budget = budget
        self._depth = 0
        self._open: set[str] = set()
        """Anchors of the collections being composed (an alias to one would be a cycle)."""
        self._measured: dict[int, tuple[int, int]] = {}

    def compose_document(self) -> Node | None:
        self._measured.clear()  # keyed by id(): ids of the last document's nodes get reused
        return super().compose_document()

    def _measure(self, node: Node) -> tuple[int, int]:
        """``(nodes, depth)`` of ``node`` expanded; memoized, so shared nodes cost once."""
        known = self._measured.get(id(node))
        if known is not None:
            return known
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        measured = [self._measure(child) for child in children]
        result = (
            1 + sum(size for size, _ in measured),
            1 + max((depth for _, depth in measured), default=0),
        )
        self._measured[id(node)] = result
        return result

    def _check_alias(self, event: yaml.AliasEvent) -> None:
        named = self.anchors.get(event.anchor)
        if named is None:
            return  # PyYAML reports the undefined alias
        if event.anchor in self._open:
            raise YamlRefused(f"alias *{event.anchor} refers to itself", event.start_mark)
        size, depth = self._measure(named)
        self._budget.left -= size
        if self._budget.left < 0:
            raise YamlRefused(
                f"YAML aliases expand to more than {self._budget.limit} nodes", event.start_mark
            )
        if self._depth + depth > MAX_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._check_alias(event)
            return super().compose_node(parent, index)
        self._depth += 1
        anchor = event.anchor
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            if anchor is not None:
                self._open.add(anchor)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """PyYAML's, but a value its tag's constructor cannot read (``!!int abc``) is refused
        with its position; PyYAML's own error (a ValueError, KeyError …) quotes the value,
        which may be a secret."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except _CONSTRUCTION_ERRORS:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise YamlRefused(f"a value cannot be read as {tag}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Keys become JSON strings at once, so ``1`` and ``"1"`` are caught as duplicates.

        Keys merged in with ``<<`` may be overridden by the mapping's own keys, as YAML says.
        """
        if not isinstance(node, MappingNode):  # a scalar tagged !!map or !!set
            raise YamlRefused(f"expected a mapping, found a {node.id}", node.start_mark)
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.flatten_mapping(node)  # merged pairs first, then the mapping's own
        merged = len(node.value) - own
        mapping: dict[str, Any] = {}
        own_keys: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            try:
                key = json_key(self.construct_object(key_node, deep=True))
            except ValueError as exc:
                raise YamlRefused(str(exc), key_node.start_mark) from None
            if position >= merged:
                if key in own_keys:
                    raise YamlRefused(f"duplicate key {key!r}", key_node.start_mark)
                own_keys.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class PythonLoader(_Bounded, Reader, Scanner, Parser):
    def __init__(self, stream: str, budget: AliasBudget) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        self._setup(budget)


def _c_loader() -> type[_Bounded] | None:
    if not yaml.__with_libyaml__:
        return None
    from yaml._yaml import CParser

    class CLoader(_Bounded, CParser):
        def __init__(self, stream: str, budget: AliasBudget) -> None:
            CParser.__init__(self, stream)
            self._setup(budget)

    return CLoader


C_LOADER = _c_loader()
"""The loader on libyaml's parser, or ``None`` when PyYAML was built without libyaml."""
LOADER: type[_Bounded] = C_LOADER or PythonLoader


def yaml_problem(exc: yaml.YAMLError) -> str:
    """The problem and its position, without quoting the document (it may hold secrets)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    text = problem if isinstance(exc, YamlRefused) else f"invalid YAML: {problem}"
    if context:
        text += f" ({context})"
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        text += f" at line {line + 1}, column {column + 1} of the manifest"
    return text


def load_documents(text: str, budget: AliasBudget) -> Iterator[Any]:
    """Each document of ``text`` in turn; :class:`yaml.YAMLError` (see :func:`yaml_problem`)."""
    loader = LOADER(text, budget)
    try:
        while loader.check_data():
            try:
                document = loader.get_data()
            except _CONSTRUCTION_ERRORS:  # a constructor's own error may quote the value
                raise YamlRefused("a value cannot be read as its tag says", None) from None
            yield document
    finally:
        loader.dispose()
