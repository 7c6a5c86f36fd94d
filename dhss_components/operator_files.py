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

YAML is read as Pulumi reads a stack file (go-yaml v3) where that matters to an operator:
duplicate keys are an error, merge keys (``<<: *base``) work, a date stays a string. Tags that
build anything but plain data (``!!binary``, ``!!set``, ``!!python/...``) are refused.
"""

from __future__ import annotations

import json
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


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1's implicit types minus those Pulumi's go-yaml keeps as strings (dates) and
    those PyYAML cannot construct safely (``=``, ``!``, ``&``, ``*`` alone)."""


_Resolver.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:timestamp",
            "tag:yaml.org,2002:value",
            "tag:yaml.org,2002:yaml",
        )
    ]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


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
        try:
            return super().construct_object(node, deep=deep)
        except ValueError:
            # int() of a number with more digits than Python converts (sys.int_info).
            self.refuse("a number too long to read; quote it if it is a string", node.start_mark)

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
