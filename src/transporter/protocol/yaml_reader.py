"""The one reader of untrusted YAML: every manifest, everywhere, goes through here with bounds.

An event's YAML may not cost more than its bounds, counted over all its manifests together with
one :class:`Budget`:

- nesting deeper than :data:`MAX_DEPTH` levels;
- aliases standing for more than :data:`MAX_ALIAS_NODES` nodes, each alias counted as a copy of
  the node it names ("billion laughs");
- more than :data:`MAX_EXPANDED_BYTES` bytes once expanded (every scalar's UTF-8 bytes plus
  :data:`NODE_OVERHEAD` per node, aliases counted as copies): one 1 MB string aliased 2,000
  times is a small document that would build 2 GB;
- undefined, duplicate or self-containing anchors, and duplicate keys.

Three ways to read, with the same bounds and the same counting, so that what one accepts the
others accept:

- :func:`scan`: the parser's events only, never a tree (the control plane's check of a
  submission: memory does not grow with the document);
- :func:`compose_documents`: nodes, aliases shared, never expanded (looking at a few fields,
  redacting Secrets and writing the YAML out again);
- :func:`load_documents`: JSON-shaped values (keys become strings, timestamps stay strings, as
  kubectl has them), for the agent that applies them.

libyaml's parser is used when PyYAML has it (about six times faster); composing, where the
bounds are kept, is ours either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

MAX_DEPTH: Final = 100
"""Deepest nesting of YAML nodes in one document (a scalar inside ``[[…]]`` is at depth 3)."""
MAX_ALIAS_NODES: Final = 100_000
"""Nodes the aliases of one event may stand for, each alias counted as a copy of its node."""
MAX_EXPANDED_BYTES: Final = 8 * 1024 * 1024
"""Bytes an event's YAML may take once every alias is expanded (see :func:`scalar_size`)."""
NODE_OVERHEAD: Final = 2
"""Bytes counted for each node beside its text: the quotes, brackets and separators of JSON."""

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_CONSTRUCTION_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What PyYAML's constructors raise for a value that does not fit its tag (``!!int abc``)."""


class YamlRefused(yaml.YAMLError):
    """Valid YAML beyond our bounds, or that cannot be built (duplicate keys, a cycle)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class Budget:
    """What the aliases and expansion of one event may still cost; share one over its
    manifests."""

    def __init__(
        self, *, nodes: int = MAX_ALIAS_NODES, expanded_bytes: int = MAX_EXPANDED_BYTES
    ) -> None:
        self.node_limit = nodes
        self.nodes_left = nodes
        self.byte_limit = expanded_bytes
        self.bytes_left = expanded_bytes

    def spend(self, *, nodes: int = 0, size: int, mark: Any) -> None:
        """Count ``size`` bytes (and, for an alias, ``nodes`` copied nodes); refuse past the
        bounds."""
        self.nodes_left -= nodes
        if self.nodes_left < 0:
            raise YamlRefused(f"aliases expand to more than {self.node_limit} nodes", mark)
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise YamlRefused(f"expands to more than {self.byte_limit} bytes", mark)


def scalar_size(value: str) -> int:
    """The bytes one scalar counts: its UTF-8 text and :data:`NODE_OVERHEAD`."""
    return (len(value) if value.isascii() else len(value.encode("utf-8", "replace"))) + (
        NODE_OVERHEAD
    )


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


# --- the parser's events only ----------------------------------------------------------------


class _Open:
    """A sequence or mapping being scanned: its nodes and bytes so far, and its tallest child."""

    __slots__ = ("anchor", "height", "nodes", "size")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.nodes = 1
        self.size = NODE_OVERHEAD
        self.height = 0


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def scan(text: str, budget: Budget) -> None:
    """Check ``text`` against the bounds from the parser's events alone; raises
    :class:`yaml.YAMLError` (see :func:`yaml_problem`). Work and memory are linear in the text,
    whatever its aliases would expand to."""
    open_: list[_Open] = []
    named: dict[str, tuple[int, int, int]] = {}
    """Anchors of this document read to their end: ``(nodes, height, bytes)``."""
    for event in yaml.parse(text, Loader=_C_SAFE):
        if isinstance(event, yaml.DocumentStartEvent):
            named.clear()  # anchors belong to one document
            continue
        if isinstance(event, yaml.ScalarEvent | yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            anchor = event.anchor
            if anchor is not None and (anchor in named or any(c.anchor == anchor for c in open_)):
                raise YamlRefused(f"duplicate anchor &{anchor}", event.start_mark)
            if isinstance(event, _STARTS):
                budget.spend(size=NODE_OVERHEAD, mark=event.start_mark)
                open_.append(_Open(anchor))
                continue
            nodes, height, size = 1, 1, scalar_size(event.value)
            budget.spend(size=size, mark=event.start_mark)
            if anchor is not None:
                named[anchor] = (nodes, height, size)
        elif isinstance(event, _ENDS):
            done = open_.pop()
            nodes, height, size = done.nodes, done.height + 1, done.size
            if done.anchor is not None:
                named[done.anchor] = (nodes, height, size)
        elif isinstance(event, yaml.AliasEvent):
            nodes, height, size = _alias(event, named, open_, budget)
        else:
            continue
        if open_:
            parent = open_[-1]
            parent.nodes += nodes
            parent.size += size
            parent.height = max(parent.height, height)


def _alias(
    event: yaml.AliasEvent,
    named: dict[str, tuple[int, int, int]],
    open_: list[_Open],
    budget: Budget,
) -> tuple[int, int, int]:
    anchor = event.anchor
    if anchor not in named:
        enclosing = any(c.anchor == anchor for c in open_)
        problem = "refers to a node that contains it" if enclosing else "is not defined"
        raise YamlRefused(f"alias *{anchor} {problem}", event.start_mark)
    nodes, height, size = named[anchor]
    budget.spend(nodes=nodes, size=size, mark=event.start_mark)
    if len(open_) + height > MAX_DEPTH:
        raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
    return nodes, height, size


# --- nodes and values ------------------------------------------------------------------------


class _Bounded(Composer, SafeConstructor, Resolver):
    """The composer and constructor with our bounds; a parser is mixed in below."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own attribute, replaced whole
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str, budget: Budget) -> None:
        raise NotImplementedError  # the loaders below set up their parser, then call _setup

    if TYPE_CHECKING:  # provided by the parser classes mixed in

        def peek_event(self) -> Any: ...
        def check_node(self) -> bool: ...
        def check_data(self) -> bool: ...
        def dispose(self) -> None: ...

    def _setup(self, budget: Budget) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._budget = budget
        self._depth = 0
        self._open: set[str] = set()
        """Anchors of the collections being composed (an alias to one would be a cycle)."""
        self._measured: dict[int, tuple[int, int, int]] = {}

    def compose_document(self) -> Node | None:
        self._measured.clear()  # keyed by id(): ids of the last document's nodes get reused
        return super().compose_document()

    def _measure(self, node: Node) -> tuple[int, int, int]:
        """``(nodes, depth, bytes)`` of ``node`` expanded; memoized, so shared nodes cost once
        to measure (and their full size each time they are used)."""
        known = self._measured.get(id(node))
        if known is not None:
            return known
        if isinstance(node, ScalarNode):
            result = (1, 1, scalar_size(str(node.value)))
        else:
            children = (
                [part for pair in node.value for part in pair]
                if isinstance(node, MappingNode)
                else list(node.value)
            )
            measured = [self._measure(child) for child in children]
            result = (
                1 + sum(nodes for nodes, _, _ in measured),
                1 + max((depth for _, depth, _ in measured), default=0),
                NODE_OVERHEAD + sum(size for _, _, size in measured),
            )
        self._measured[id(node)] = result
        return result

    def _check_alias(self, event: yaml.AliasEvent) -> None:
        named = self.anchors.get(event.anchor)
        if named is None:
            return  # PyYAML reports the undefined alias
        if event.anchor in self._open:
            raise YamlRefused(f"alias *{event.anchor} refers to itself", event.start_mark)
        nodes, depth, size = self._measure(named)
        self._budget.spend(nodes=nodes, size=size, mark=event.start_mark)
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
            if isinstance(event, yaml.ScalarEvent):
                self._budget.spend(size=scalar_size(event.value), mark=event.start_mark)
            else:
                self._budget.spend(size=NODE_OVERHEAD, mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """PyYAML's, but a value its tag's constructor cannot read (``!!int abc``) is refused
        with its position; PyYAML's own error quotes the value, which may be a secret."""
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
    def __init__(self, stream: str, budget: Budget) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        self._setup(budget)


def _c_loader() -> type[_Bounded] | None:
    if not yaml.__with_libyaml__:
        return None
    from yaml._yaml import CParser

    class CLoader(_Bounded, CParser):
        def __init__(self, stream: str, budget: Budget) -> None:
            CParser.__init__(self, stream)
            self._setup(budget)

    return CLoader


C_LOADER: Final = _c_loader()
"""The loader on libyaml's parser, or ``None`` when PyYAML was built without libyaml."""
LOADER: type[_Bounded] = C_LOADER or PythonLoader
_C_SAFE: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose_documents(text: str, budget: Budget) -> list[Node | None]:
    """The node tree of each document (aliases shared, never expanded); ``None`` for an empty
    document. Raises :class:`yaml.YAMLError` (see :func:`yaml_problem`)."""
    loader = LOADER(text, budget)
    try:
        documents: list[Node | None] = []
        while loader.check_node():
            documents.append(loader.get_node())
        return documents
    finally:
        loader.dispose()


def load_documents(text: str, budget: Budget) -> Iterator[Any]:
    """Each document of ``text`` in turn, JSON-shaped; :class:`yaml.YAMLError` else."""
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


def yaml_problem(exc: yaml.YAMLError, *, where: str = "") -> str:
    """The problem and its position (``where``: of what, e.g. ``of the manifest``), never
    quoting the document (it may hold secrets)."""
    problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
    context = getattr(exc, "context", None)
    text = f"YAML {problem}" if isinstance(exc, YamlRefused) else f"not valid YAML: {problem}"
    if context:
        text += f" ({context})"
    mark = getattr(exc, "problem_mark", None)
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        text += f" at line {line + 1}, column {column + 1}" + (f" {where}" if where else "")
    return text
