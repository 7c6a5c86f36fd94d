"""Reading the files an operator writes or keeps: hostile-by-accident input, bounded work.

The stack file (``Pulumi.<stack>.yaml``), the fleet's tenants file, ``manila.conf`` and the
fleet's service subnet ledger are read here, and only here. Whatever the bytes, a reader
returns plain data (str, int, float, bool, None, list, dict) or raises ``OperatorFileError``
with one line: the file, the line and column where known, what is wrong and what to do. It
never quotes the file's text beyond a short excerpt of a key or a token, because a line of a
stack file or of ``manila.conf`` may hold a password.

The limits keep the work proportional to the file, whatever the file does:

- ``MAX_FILE_BYTES``: a file larger than this is refused before it is parsed.
- ``MAX_NESTING``: lists and mappings nested deeper than this are refused while parsing, so
  nothing downstream (pydantic, ``repr``, ``json.dumps``) recurses towards Python's limit.
- ``MAX_VALUES``: the number of values the YAML document holds *once every alias is
  expanded*. An alias costs what it expands to, counted as the document is composed, so an
  alias bomb (nine lines of nine aliases each: 9^9 = 387 million values from 846 bytes) is
  refused after at most this many values of work, in memory bounded by the same number.

YAML is read as Pulumi reads a stack file (go-yaml v3): a plain scalar means what it means to
Pulumi (``no``, ``on`` are strings, ``0755`` is 493, ``1e3`` is 1000.0, ``1:20`` is a string;
see ``go_yaml_plain_scalar``), duplicate keys are an error, merge keys (``<<: *base``) work, a
date stays a string. Tags that build anything but plain data (``!!binary``, ``!!set``,
``!!python/...``) are refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode

MAX_FILE_BYTES = 1 << 20
"""1 MiB: a tenants file of 2,000 tenants with one share each is 650 kB, a stack file a few
kB. Checked before any parsing, so ``/dev/zero`` costs one MiB of reading."""
MAX_NESTING = 32
"""The deepest real file (a tenants file's access rule) is 7 levels deep; Python's recursion
limit, which a consumer walking the data would hit, is 1000."""
MAX_VALUES = 200_000
"""2,000 tenants are 52,000 values. The worst case the limit lets through (one flow list of
200,000 values, 400 kB) takes 1.2 s and 90 MB (benchmarks/operator_files.py)."""

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_EXCERPT = 40


class OperatorFileError(Exception):
    """The file cannot be used; ``str()`` is one line naming the file, where, why and the fix."""

    def __init__(
        self, path: str, reason: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = path
        self.reason = " ".join(reason.split())
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f", line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{path}{where}: {self.reason}")


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """``text`` made safe to show in a one-line message: escaped, at most ``limit`` chars."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# -- bytes and text ---------------------------------------------------------------------------


def read_bytes(path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes, at most ``limit`` of them; a pipe (``<(ssh host cat ...)``) works."""
    name = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise OperatorFileError(name, "no such file; check the path") from None
    except IsADirectoryError:
        raise OperatorFileError(name, "is a directory; give the path of the file") from None
    except OSError as exc:
        raise OperatorFileError(name, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise OperatorFileError(
            name, f"larger than {limit // 1024} KiB, the limit for this file; is it the right file?"
        )
    return data


def text_of(data: bytes, path: str) -> str:
    """UTF-8 text without NUL bytes (a leading byte order mark is dropped)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise OperatorFileError(
            path,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
            line=line,
            column=column,
        ) from None
    if "\x00" in text:
        line, column = _line_column(text, text.index("\x00"))
        raise OperatorFileError(
            path, "a NUL byte: this is not a text file", line=line, column=column
        )
    return text.removeprefix("\ufeff")


def read_text(path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES) -> str:
    return text_of(read_bytes(path, limit=limit), str(path))


# -- YAML -------------------------------------------------------------------------------------


# -- plain scalars, as go-yaml v3 resolves them -------------------------------------------------
#
# The Pulumi CLI reads Pulumi.<stack>.yaml with go-yaml v3 (gopkg.in/yaml.v3), whose resolve()
# (resolve.go at v3.0.1) follows YAML 1.2's core schema more than 1.1, unlike PyYAML's default:
#
# - by the first character: `+ - 0-9` may be a number, `.` a float, `y Y n N t T f F o O ~`
#   only a word of the table below; anything else is a string;
# - the table: true/True/TRUE, false/False/FALSE, ~/null/Null/NULL and the empty value,
#   .nan/.NaN/.NAN, [+-].inf/.Inf/.INF; so yes, no, on, off, y, n are strings;
# - a number: every `_` removed, then Go's strconv.ParseInt(s, 0, 64) (decimal, 0x, 0o, 0b,
#   and a leading 0 for octal: 0755 is 493), then ParseUint (up to 2^64-1), then a float
#   matching ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ (1e3 is 1000.0, 08 is 8.0;
#   a float too large for 64 bits, 1e400, stays a string), then 0b/0o followed by a signed
#   number (0b-101 is -5);
# - no sexagesimal (1:20 is a string), and a date (2001-12-14) is a timestamp, which Pulumi
#   keeps as text; here it stays the text as written.
#
# A quoted or block scalar is a string. An explicit tag (!!int "0x1F") resolves the text the
# same way and must give that type (!!float accepts an int), as go-yaml checks.

YAML_TAG = "tag:yaml.org,2002:"
_HINT_NUMBER = frozenset("+-0123456789")
_WORDS: dict[str, tuple[str, Any]] = {
    **{word: ("bool", True) for word in ("true", "True", "TRUE")},
    **{word: ("bool", False) for word in ("false", "False", "FALSE")},
    **{word: ("null", None) for word in ("", "~", "null", "Null", "NULL")},
    **{word: ("float", math.nan) for word in (".nan", ".NaN", ".NAN")},
    **{word: ("float", math.inf) for word in (".inf", ".Inf", ".INF")},
    **{word: ("float", math.inf) for word in ("+.inf", "+.Inf", "+.INF")},
    **{word: ("float", -math.inf) for word in ("-.inf", "-.Inf", "-.INF")},
    "<<": ("merge", "<<"),
}
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _go_parse_uint(text: str, base: int) -> int | None:
    """Go's strconv.ParseUint(text, base, 64) without underscores; None where Go errs."""
    if not text:
        return None
    if base == 0:
        base = 10
        if text[0] == "0":
            prefix = text[1:2].lower()
            if len(text) >= 3 and prefix in ("b", "o", "x"):
                base, text = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
            else:
                base, text = 8, text[1:]
    value = 0
    for character in text:
        digit = _DIGITS.find(character.lower()) if character.isascii() else -1
        if not 0 <= digit < base:
            return None
        value = value * base + digit
        if value >= 1 << 64:
            return None
    return value


def _go_parse_int(text: str, base: int) -> int | None:
    """Go's strconv.ParseInt(text, base, 64): one optional sign, then ParseUint's digits."""
    negative = text[:1] == "-"
    magnitude = _go_parse_uint(text[1:] if text[:1] in ("+", "-") else text, base)
    if magnitude is None:
        return None
    if negative:
        return -magnitude if magnitude <= 1 << 63 else None
    return magnitude if magnitude < 1 << 63 else None


def _go_underscores_ok(text: str) -> bool:
    """Go's strconv.underscoreOK for a number without base prefix: `_` only between digits."""
    previous = "^"
    for character in text[1:] if text[:1] in ("+", "-") else text:
        if "0" <= character <= "9":
            previous = "0"
        elif character == "_":
            if previous != "0":
                return False
            previous = "_"
        elif previous == "_":
            return False
        else:
            previous = "!"
    return previous != "_"


def _finite(number: float) -> float | None:
    # Go's ParseFloat fails with ErrRange where Python's float() rounds to infinity.
    return None if math.isinf(number) else number


def go_yaml_plain_scalar(text: str) -> tuple[str, Any]:
    """(tag, value) go-yaml v3 gives the plain scalar ``text``: tag is one of str, bool, int,
    float, null, merge."""
    if text in _WORDS:
        return _WORDS[text]
    first = text[:1]
    if first == ".":
        if "_" in text and not _go_underscores_ok(text):
            return "str", text
        plain = text.replace("_", "")
        number = _finite(float(plain)) if _DOT_FLOAT.fullmatch(plain) else None
        return ("float", number) if number is not None else ("str", text)
    if first not in _HINT_NUMBER:
        return "str", text
    # A date (2001-12-14) would be a timestamp, kept as its text: nothing that starts with four
    # digits and a dash is a number to go-yaml, so it is the string below.
    plain = text.replace("_", "")
    integer = _go_parse_int(plain, 0)
    if integer is None:
        integer = _go_parse_uint(plain, 0)
    if integer is not None:
        return "int", integer
    if _YAML_STYLE_FLOAT.fullmatch(plain):
        number = _finite(float(plain))
        if number is not None:
            return "float", number
    for prefix, base in (("0b", 2), ("0o", 8)):
        if plain.startswith(prefix):
            integer = _go_parse_int(plain[2:], base)
            if integer is None:
                integer = _go_parse_uint(plain[2:], base)
            return ("int", integer) if integer is not None else ("str", text)
        if plain.startswith("-" + prefix):
            integer = _go_parse_int("-" + plain[3:], base)
            return ("int", integer) if integer is not None else ("str", text)
    return "str", text


def go_yaml_tagged_scalar(tag: str, text: str) -> tuple[str, Any] | None:
    """The value of ``!!tag text`` as go-yaml v3 decodes it, or None where it refuses."""
    if tag == "str":
        return "str", text
    resolved, value = go_yaml_plain_scalar(text)
    if resolved == tag:
        return resolved, value
    if tag == "float" and resolved == "int":
        return "float", float(value)
    return None


class _Resolver(yaml.resolver.BaseResolver):
    """Plain scalars as go-yaml v3 resolves them; quoted and block scalars are strings."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return YAML_TAG + (go_yaml_plain_scalar(value)[0] if implicit[0] else "str")
        resolved: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return resolved


class _Bounded(yaml.composer.Composer, yaml.constructor.SafeConstructor, _Resolver):
    """The safe loader's composer and constructor, with the limits counted as the document is
    composed (PyYAML's C loader composes in C, where nothing can be counted; its events are
    used when PyYAML has them, being seven times faster than the pure-Python scanner)."""

    # From the parser it is mixed with (PyYAML's or libyaml's):
    peek_event: Callable[[], Any]
    dispose: Callable[[], None]

    def __init__(self, path: str) -> None:
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self.path = path
        self.depth = 0
        self.deepest = 0
        self.values = 0
        self.open_anchors: set[str] = set()
        self.expanded: dict[str, tuple[int, int]] = {}
        """anchor -> (values it expands to, nesting levels from it down)"""
        self.written_pairs: dict[Node, list[tuple[Node, Node]]] = {}
        """A mapping's pairs as written: merging (``<<``) adds to a node's pairs in place."""

    # A mark is PyYAML's or libyaml's Mark (line and column from 0).
    def refuse(self, reason: str, mark: Any) -> NoReturn:
        if mark is None:
            raise OperatorFileError(self.path, reason)
        raise OperatorFileError(self.path, reason, line=mark.line + 1, column=mark.column + 1)

    def count(self, values: int, mark: Any) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            self.refuse(
                f"more than {MAX_VALUES} values once its aliases are expanded (an alias "
                "bomb?); write the values out, or alias less",
                mark,
            )

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            anchor = event.anchor
            if anchor in self.open_anchors:
                self.refuse(
                    f"alias *{excerpt(anchor)} is inside its own anchor; YAML here must not "
                    "refer to itself",
                    event.start_mark,
                )
            if anchor in self.expanded:
                values, below = self.expanded[anchor]
                self.count(values, event.start_mark)
                self.check_depth(self.depth + below, event.start_mark)
            alias: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            return alias
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            self.depth += 1
            self.check_depth(self.depth, event.start_mark)
        self.count(1, event.start_mark)
        anchor = event.anchor
        values_before, deepest_before = self.values, self.deepest
        self.deepest = self.depth
        if anchor is not None:
            self.open_anchors.add(anchor)
        node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
        if isinstance(node, MappingNode):
            self.written_pairs[node] = list(node.value)
        if anchor is not None:
            self.open_anchors.discard(anchor)
            below = self.deepest - self.depth + (1 if collection else 0)
            self.expanded[anchor] = (self.values - values_before, below)
        self.deepest = max(deepest_before, self.deepest)
        if collection:
            self.depth -= 1
        return node

    def check_depth(self, depth: int, mark: Any) -> None:
        self.deepest = max(self.deepest, depth)
        if depth > MAX_NESTING:
            self.refuse(
                f"lists and mappings nested more than {MAX_NESTING} deep; no file read here "
                "needs more than a few levels",
                mark,
            )

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node.tag not in _PLAIN_TAGS:
            self.refuse(
                f"tag {excerpt(node.tag.replace('tag:yaml.org,2002:', '!!'))} is not allowed "
                "here: write plain values (strings, numbers, true/false, lists, mappings)",
                node.start_mark,
            )
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_seen: dict[Any, Any] = {}
            merges = 0
            for key_node, _ in self.written_pairs[node]:
                if key_node.tag == _MERGE_TAG:
                    merges += 1
                    if merges > 1:
                        self.refuse(
                            "two merge keys (<<) in one mapping; merge several with "
                            "<<: [*one, *two]",
                            key_node.start_mark,
                        )
                    continue
                if not isinstance(key_node, ScalarNode):
                    self.refuse(
                        "a key must be a plain value, not a list or a mapping (`? [a, b]`)",
                        key_node.start_mark,
                    )
                key = self.construct_object(key_node)
                if key in first_seen:
                    self.refuse(
                        f"duplicate key {excerpt(repr(key))} (first at line "
                        f"{first_seen[key].line + 1}); keep one",
                        key_node.start_mark,
                    )
                first_seen[key] = key_node.start_mark
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _construct_scalar(loader: Any, node: ScalarNode) -> Any:
    """The constructor of !!int, !!float, !!bool and !!null, implicit or written."""
    tag = node.tag.removeprefix(YAML_TAG)
    resolved = go_yaml_tagged_scalar(tag, loader.construct_scalar(node))
    if resolved is None:
        loader.refuse(
            f"!!{tag} {excerpt(repr(node.value))} is not a {tag} to Pulumi (go-yaml v3); "
            "write the value without the tag, or quote it as a string",
            node.start_mark,
        )
        raise AssertionError("refuse raises")
    return resolved[1]


for _tag in ("int", "float", "bool", "null"):
    _Bounded.add_constructor(YAML_TAG + _tag, _construct_scalar)


class _PythonLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Bounded):
    def __init__(self, text: str, path: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Bounded.__init__(self, path)


_LOADERS: list[Callable[[str, str], _Bounded]] = [_PythonLoader]
try:
    from yaml._yaml import CParser

    class _LibyamlLoader(CParser, _Bounded):
        # CParser composes in C; these must be the Python composer's.
        get_single_node = yaml.composer.Composer.get_single_node
        get_node = yaml.composer.Composer.get_node
        check_node = yaml.composer.Composer.check_node

        def __init__(self, text: str, path: str) -> None:
            CParser.__init__(self, text)
            _Bounded.__init__(self, path)

    _LOADERS.insert(0, _LibyamlLoader)
except ImportError:  # PyYAML built without libyaml
    pass


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _yaml_reason(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's own words, without its snippet of the line and with quoted tokens cut short."""
    words = " ".join(p for p in (error.context, error.problem) if p)
    return _QUOTED.sub(lambda m: excerpt(m.group(0), 24), words) or "unreadable"


def yaml_document(
    data: bytes, path: str, *, loader: Callable[[str, str], _Bounded] | None = None
) -> Any:
    """The one YAML document in ``data``, as plain data; OperatorFileError otherwise.
    ``loader``: the tests run both PyYAML parsers (libyaml's and the pure-Python one)."""
    if len(data) > MAX_FILE_BYTES:
        raise OperatorFileError(path, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    text = text_of(data, path)
    parser: _Bounded | None = None
    try:
        parser = (loader or _LOADERS[0])(text, path)
        return parser.get_single_data()
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        character = exc.character if isinstance(exc.character, int) else 0
        raise OperatorFileError(
            path,
            f"character U+{character:04X} is not allowed in YAML; remove it",
            line=line,
            column=column,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise OperatorFileError(
            path,
            f"not valid YAML: {_yaml_reason(exc)}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError:
        raise OperatorFileError(path, "not valid YAML") from None
    finally:
        if parser is not None:
            parser.dispose()


def load_yaml(path: str | os.PathLike[str]) -> Any:
    return yaml_document(read_bytes(path), str(path))


# -- JSON -------------------------------------------------------------------------------------

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _brackets(text: str) -> Iterator[tuple[int, str]]:
    for match in _JSON_TOKENS.finditer(text):
        if match.group(0)[0] != '"':
            yield match.start(), match.group(0)


def json_document(data: bytes, path: str) -> Any:
    """The JSON value in ``data``: no duplicate keys, no NaN, no deeper than MAX_NESTING."""
    if len(data) > MAX_FILE_BYTES:
        raise OperatorFileError(path, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    text = text_of(data, path)
    # The json module recurses once per level; count the levels before it does.
    depth = 0
    for offset, bracket in _brackets(text):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            line, column = _line_column(text, offset)
            raise OperatorFileError(
                path, f"nested more than {MAX_NESTING} deep", line=line, column=column
            )

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise OperatorFileError(path, f"duplicate key {excerpt(repr(key))}; keep one")
            result[key] = value
        return result

    def constant(name: str) -> NoReturn:
        raise OperatorFileError(path, f"{name} is not a JSON number")

    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise OperatorFileError(
            path, f"not valid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from None
    except ValueError:
        # int() of a number with more digits than Python converts (sys.int_info).
        raise OperatorFileError(path, "not valid JSON: a number too long to read") from None


def load_json(path: str | os.PathLike[str]) -> Any:
    return json_document(read_bytes(path), str(path))
