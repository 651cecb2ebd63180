"""Label selectors over agents' labels, in the syntax ``kubectl get -l`` takes.

:meth:`Selector.parse` follows apimachinery's ``labels.Parse`` (k8s.io/apimachinery/pkg/labels):
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k`` (does
not exist), ``k>1`` and ``k<1`` (integers), requirements separated by ``,`` and all required.
Its lexer's rules hold: spaces, tabs, CR and LF separate tokens; ``in`` and ``notin`` are
keywords only where an operator is expected; ``k=`` and ``k in ()`` name the empty value; keys
and values are checked as the API server checks them (:func:`ids.check_label_key`,
:func:`ids.check_label_value`). ``str()`` is apimachinery's canonical form: requirements sorted
by key, each set's values sorted and without duplicates. An empty selector selects everything.

Where we differ, we are stricter: a character outside printable ASCII and those four spaces is
refused where the lexer meets it (apimachinery refuses it later, in the key or value, except a
NUL, which its lexer takes for the end of the text); requirements with equal keys keep their
order (Go's ``sort.Sort`` need not, past 12).

Hostile text is bounded (:data:`MAX_TEXT`, :data:`MAX_REQUIREMENTS`, :data:`MAX_VALUES`) and
every refusal is a :class:`SelectorError` of one line naming the position or the requirement.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from transporter.protocol import ids

MAX_TEXT: Final = 4096
"""Characters of selector text."""
MAX_REQUIREMENTS: Final = 64
MAX_VALUES: Final = 64
"""Distinct values in one ``in``/``notin`` set."""

_WHITESPACE: Final = frozenset(" \t\r\n")
_SPECIAL: Final = frozenset("=!(),<>")
_TWO_CHAR: Final = frozenset({"==", "!="})
_KEYWORDS: Final = frozenset({"in", "notin"})
_IDENTIFIER = "identifier"
_END = "end"
_INT64: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MAX: Final = 2**63 - 1


class SelectorError(ValueError):
    """A label selector we refuse: the message says where and why, on one line."""


class Operator(enum.StrEnum):
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = ">"
    LESS_THAN = "<"


_BINARY: Final = {
    "=": Operator.EQUALS,
    "==": Operator.DOUBLE_EQUALS,
    "!=": Operator.NOT_EQUALS,
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
    ">": Operator.GREATER_THAN,
    "<": Operator.LESS_THAN,
}
_SETS: Final = frozenset({Operator.IN, Operator.NOT_IN})
_NUMERIC: Final = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN})


@attrs.frozen
class Requirement:
    """One requirement: ``values`` sorted and distinct (empty for exists and does-not-exist)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.key not in labels:
            return op in (Operator.NOT_EQUALS, Operator.NOT_IN)
        value = labels[self.key]
        if op in _NUMERIC:
            have, want = _int64(value), _int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op is Operator.GREATER_THAN else have < want
        return (value in self.values) != (op in (Operator.NOT_EQUALS, Operator.NOT_IN))

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        values = ",".join(self.values)
        if op in _SETS:
            return f"{self.key} {op.value} ({values})"
        return f"{self.key}{op.value}{values}"


@attrs.frozen
class Selector:
    """Parsed requirements, sorted by key (stable: equal keys keep their order); all must hold."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Selector:
        if not isinstance(text, str):
            raise SelectorError(f"a label selector is text, not {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise SelectorError(f"label selector of {len(text)} characters (at most {MAX_TEXT})")
        parsed = _Parser(text).selector()
        return cls(tuple(sorted(parsed, key=lambda requirement: requirement.key)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def selects_everything(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``, or None where it fails."""
    if not _INT64.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 19:  # also keeps int() far from its limit on digits
        return None
    number = -int(digits) if text.startswith("-") else int(digits)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


@attrs.frozen
class _Token:
    kind: str
    """A symbol or keyword as written, :data:`_IDENTIFIER` or :data:`_END`."""
    text: str
    position: int


def _lex(text: str) -> list[_Token]:
    """apimachinery's lexer, after refusing any character no valid selector holds."""
    for position, char in enumerate(text):
        if not ("!" <= char <= "~" or char in _WHITESPACE):
            raise SelectorError(
                f"label selector {_shown(text)}: unexpected character U+{ord(char):04X}"
                f" at position {position + 1}"
            )
    tokens: list[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position] in _WHITESPACE:
            position += 1
        if position == len(text):
            tokens.append(_Token(_END, "", position))
            return tokens
        start = position
        if text[position] in _SPECIAL:
            symbol = text[position : position + 2]
            if symbol not in _TWO_CHAR:
                symbol = text[position]
            tokens.append(_Token(symbol, symbol, start))
            position += len(symbol)
            continue
        while position < len(text) and not (
            text[position] in _WHITESPACE or text[position] in _SPECIAL
        ):
            position += 1
        word = text[start:position]
        tokens.append(_Token(word if word in _KEYWORDS else _IDENTIFIER, word, start))


class _Parser:
    """apimachinery's parser: one token of look-ahead; ``in`` and ``notin`` are identifiers
    wherever a key or a value may stand."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.index = 0
        self.start = 0
        """Where the requirement being parsed starts (for messages)."""

    def _peek(self, *, operator: bool = False) -> _Token:
        token = self.tokens[self.index]
        if not operator and token.kind in _KEYWORDS:
            return _Token(_IDENTIFIER, token.text, token.position)
        return token

    def _next(self, *, operator: bool = False) -> _Token:
        token = self._peek(operator=operator)
        self.index += 1
        return token

    def _fail(self, token: _Token, expected: str) -> SelectorError:
        found = "the end" if token.kind == _END else repr(token.text)
        return SelectorError(
            f"label selector {_shown(self.text)}: at position {token.position + 1}:"
            f" found {found}, expected {expected}"
        )

    def selector(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token = self._peek()
            if token.kind == _END:
                return requirements
            if token.kind not in (_IDENTIFIER, "!"):
                raise self._fail(token, "'!', an identifier or the end")
            if len(requirements) == MAX_REQUIREMENTS:
                raise SelectorError(
                    f"label selector {_shown(self.text)}: more than {MAX_REQUIREMENTS} requirements"
                )
            requirements.append(self._requirement())
            token = self._next()
            if token.kind == _END:
                return requirements
            if token.kind != ",":
                raise self._fail(token, "',' or the end")
            if self._peek().kind not in (_IDENTIFIER, "!"):
                raise self._fail(self._peek(), "'!' or an identifier after ','")

    def _requirement(self) -> Requirement:
        self.start = self._peek().position
        negated = self._peek().kind == "!"
        if negated:
            self._next()
        token = self._next()
        if token.kind != _IDENTIFIER:
            raise self._fail(token, "an identifier")
        key = self._checked(ids.check_label_key, token.text)
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek().kind in (_END, ","):
            return Requirement(key, Operator.EXISTS)
        token = self._next(operator=True)
        operator = _BINARY.get(token.kind)
        if operator is None:
            raise self._fail(token, "one of =, ==, !=, in, notin, >, <")
        values = sorted(self._set() if operator in _SETS else self._exact())
        for value in values:
            self._checked(ids.check_label_value, value)
        if operator in _NUMERIC and _int64(values[0]) is None:
            raise self._error(f"the value of {operator.value} must be an integer")
        return Requirement(key, operator, tuple(sorted(values)))

    def _exact(self) -> tuple[str]:
        if self._peek().kind in (_END, ","):
            return ("",)
        token = self._next()
        if token.kind != _IDENTIFIER:
            raise self._fail(token, "an identifier")
        return (token.text,)

    def _set(self) -> set[str]:
        token = self._next()
        if token.kind != "(":
            raise self._fail(token, "'('")
        token = self._peek()
        if token.kind == ")":
            self._next()
            return {""}
        if token.kind not in (_IDENTIFIER, ","):
            raise self._fail(token, "',', ')' or an identifier")
        values = self._identifiers()
        self._next()  # the ')' that ended the list
        if len(values) > MAX_VALUES:
            raise self._error(f"{len(values)} values in a set (at most {MAX_VALUES})")
        return values

    def _identifiers(self) -> set[str]:
        """apimachinery's ``parseIdentifiersList``: ``(,a)``, ``(a,)``, ``(a,,b)`` and ``(a,,)``
        hold the empty value."""
        values: set[str] = set()
        while True:
            token = self._next()
            if token.kind == _IDENTIFIER:
                values.add(token.text)
                after = self._peek()
                if after.kind == ")":
                    return values
                if after.kind != ",":
                    raise self._fail(after, "',' or ')'")
            elif token.kind == ",":
                if not values:
                    values.add("")
                after = self._peek()
                if after.kind == ")":
                    values.add("")
                    return values
                if after.kind == ",":
                    values.add("")
            else:
                raise self._fail(token, "',' or an identifier")

    def _checked(self, check: Callable[[str], str], text: str) -> str:
        try:
            return check(text)
        except ValueError as exc:
            raise self._error(str(exc)) from None

    def _error(self, why: str) -> SelectorError:
        end = self.tokens[min(self.index, len(self.tokens) - 1)].position
        written = self.text[self.start : max(end, self.start + 1)].strip()
        return SelectorError(
            f"label selector {_shown(self.text)}: requirement {_shown(written)}"
            f" (at position {self.start + 1}): {why}"
        )


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
