"""Reading operator files: hostile-by-accident bytes get a one-line refusal, never a crash,
never a flood, never the file's secrets; ordinary YAML (anchors, merge keys) still works."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.operator_files import (
    _LOADERS,
    MAX_FILE_BYTES,
    MAX_NESTING,
    MAX_VALUES,
    OperatorFileError,
    _Bounded,
    json_document,
    load_yaml,
    text_of,
    yaml_document,
)

# The classic "billion laughs", nine levels of nine aliases: 9^9 (387 million) strings once
# expanded, from 846 bytes (padded with a comment to the size of the file in the report that
# first showed it: 31 s, 2.9 GB and 720 MB on stderr).
LAUGHS = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]"
    for previous, level in itertools.pairwise("abcdefghi")
]
BILLION_LAUGHS = ("\n".join(LAUGHS) + "\n").encode()
BILLION_LAUGHS += b"#" * (845 - len(BILLION_LAUGHS)) + b"\n"

PARSERS = pytest.mark.parametrize(
    "loader", _LOADERS, ids=[getattr(c, "__name__", "?") for c in _LOADERS]
)
"""Every test of YAML runs on libyaml's events and on PyYAML's pure-Python parser."""

Loader = Callable[[str, str], _Bounded]


def refusal(data: bytes, loader: Loader | None = None) -> OperatorFileError:
    with pytest.raises(OperatorFileError) as caught:
        yaml_document(data, "tenants.yaml", loader=loader)
    assert "\n" not in str(caught.value)
    return caught.value


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


# -- alias expansion -----------------------------------------------------------------------------


@PARSERS
def test_an_alias_bomb_is_refused_at_the_line_that_crosses_the_limit(loader: Loader) -> None:
    assert len(BILLION_LAUGHS) == 846

    error = refusal(BILLION_LAUGHS, loader)

    # Level e expands to 66,430 values; the third *e of level f (line 6) passes 200,000.
    assert (error.line, error.column) == (6, 16)
    assert error.reason.startswith(f"more than {MAX_VALUES} values once its aliases are expanded")
    assert len(str(error)) < 200


@PARSERS
def test_aliases_are_counted_at_their_expanded_size(loader: Loader) -> None:
    # 1 + 1000 values in the anchored list; 199 aliases of it fit, the 200th does not.
    anchored = "x: &x [" + ", ".join(["v"] * 1000) + "]\n"

    def document(aliases: int) -> bytes:
        return (anchored + "y: [" + ", ".join(["*x"] * aliases) + "]\n").encode()

    # Values: the root mapping, the keys x and y, the list y, and the list x and its 1000.
    fits = (MAX_VALUES - 4) // 1001 - 1
    assert len(yaml_document(document(fits), "f.yaml", loader=loader)["y"]) == fits
    assert refusal(document(fits + 1), loader).line == 2


@PARSERS
def test_an_alias_inside_its_own_anchor_is_refused(loader: Loader) -> None:
    error = refusal(b"shares: &s [*s]\n", loader)

    assert (error.line, error.reason) == (
        1,
        "alias *s is inside its own anchor; YAML here must not refer to itself",
    )


# -- nesting -------------------------------------------------------------------------------------


@PARSERS
def test_nesting_is_refused_past_the_limit_before_python_recursion(loader: Loader) -> None:
    assert yaml_document(nested(MAX_NESTING), "f.yaml", loader=loader) is not None
    assert refusal(nested(MAX_NESTING + 1), loader).reason.startswith(
        f"lists and mappings nested more than {MAX_NESTING} deep"
    )
    # Deep enough that an unbounded composer or constructor dies of RecursionError.
    assert refusal(nested(100_000), loader).column == MAX_NESTING + 1


@PARSERS
def test_an_alias_counts_the_nesting_it_brings(loader: Loader) -> None:
    # 20 levels anchored, aliased under 20 more: 40 levels once expanded.
    deep = b"[" * 20 + b"1" + b"]" * 20
    document = b"a: &a " + deep + b"\nb: " + b"[" * 19 + b"*a" + b"]" * 19 + b"\n"

    assert refusal(document, loader).line == 2


# -- what YAML may say ---------------------------------------------------------------------------


@PARSERS
def test_merge_keys_work_and_explicit_keys_win(loader: Loader) -> None:
    document = yaml_document(
        b"gold: &gold {share_backend_name: GOLD, cinder_volume_type: ssd}\n"
        b"silver: {<<: *gold, cinder_volume_type: hdd}\n"
        b"both: {<<: [*gold, {share_backend_name: X, size: 1}]}\n",
        "f.yaml",
        loader=loader,
    )

    assert document["silver"] == {"share_backend_name": "GOLD", "cinder_volume_type": "hdd"}
    # In a list of merged mappings the first one wins (YAML's merge key rule).
    assert document["both"] == {
        "share_backend_name": "GOLD",
        "cinder_volume_type": "ssd",
        "size": 1,
    }


@PARSERS
@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (b"a: 1\nb: 2\na: 3\n", (3, 1), "duplicate key 'a' (first at line 1); keep one"),
        (
            b"gold: &g {x: 1}\nsilver: {<<: *g, x: 2,\n  x: 3}\n",
            (3, 3),
            "duplicate key 'x' (first at line 2); keep one",
        ),
        (
            b"g: &g {x: 1}\ns: {<<: *g, <<: *g}\n",
            (2, 13),
            "two merge keys (<<) in one mapping; merge several with <<: [*one, *two]",
        ),
        (
            b"? [a, b]\n: 1\n",
            (1, 3),
            "a key must be a plain value, not a list or a mapping (`? [a, b]`)",
        ),
        (
            b"{a: 1}: 1\n",
            (1, 1),
            "a key must be a plain value, not a list or a mapping (`? [a, b]`)",
        ),
        (
            b"key: !!binary aGVsbG8=\n",
            (1, 6),
            "tag !!binary is not allowed here: write plain values (strings, numbers, "
            "true/false, lists, mappings)",
        ),
        (
            b"x: !!python/object/apply:os.system [true]\n",
            (1, 4),
            "tag !!python/object/apply:os.system is not allowed here: write plain values "
            "(strings, numbers, true/false, lists, mappings)",
        ),
        (b"s: !!set {a, b}\n", (1, 4), "tag !!set is not allowed here"),
        (b"n: !!int 0b2\n", (1, 4), "!!int '0b2' is not a int to Pulumi"),
        (b"n: !!bool yes\n", (1, 4), "!!bool 'yes' is not a bool to Pulumi"),
    ],
)
def test_what_plain_data_cannot_hold_is_refused_with_line_and_column(
    loader: Loader, text: bytes, where: tuple[int, int], reason: str
) -> None:
    error = refusal(text, loader)

    assert (error.line, error.column) == where
    assert error.reason.startswith(reason)


@PARSERS
def test_dates_stay_strings_as_pulumi_reads_them(loader: Loader) -> None:
    # PyYAML makes 2024-02-31 a date and crashes on it; go-yaml keeps it a string.
    assert yaml_document(b"a: 2024-02-31\nb: 2024-01-01\n", "f.yaml", loader=loader) == {
        "a": "2024-02-31",
        "b": "2024-01-01",
    }


# -- plain scalars as Pulumi (go-yaml v3) reads them ---------------------------------------------

# Each row: a plain scalar and what go-yaml v3 decodes it to into an interface{} (Pulumi reads
# an object in a stack file that way). The rows marked "decode_test" are go-yaml v3's own test
# cases (decode_test.go at v3.0.1, unmarshalTests); the others follow from resolve.go's
# resolve() and Go's strconv, line by line (see operator_files). YAML 1.1 (PyYAML's default)
# reads the first group differently.
GO_YAML_V3 = [
    # YAML 1.1 words and forms that are plain strings to go-yaml v3
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("Yes", "Yes"),
    ("y", "y"),
    ("n", "n"),
    ("1:20", "1:20"),  # no sexagesimal (decode_test: "Unsupported")
    ("190:20:30.15", "190:20:30.15"),
    ("2001-12-14", "2001-12-14"),  # a timestamp, kept as its text
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
    ("NaN", "NaN"),
    ("inf", "inf"),
    ("Infinity", "Infinity"),
    ("+.nan", "+.nan"),
    ("0x", "0x"),
    ("0b", "0b"),
    ("0b2", "0b2"),
    ("1e400", "1e400"),  # ParseFloat's ErrRange: not a number, so a string
    ("._5", "._5"),
    ("1_000_a", "1_000_a"),
    ("=", "="),
    ("<", "<"),
    ("0x1p-2", "0x1p-2"),  # a Go hex float, but not yamlStyleFloat
    # YAML 1.1 and 1.2 agree on the words of the table
    ("true", True),  # decode_test
    ("True", True),  # decode_test
    ("TRUE", True),  # decode_test
    ("false", False),
    ("False", False),  # decode_test
    ("FALSE", False),  # decode_test
    ("tRUE", "tRUE"),
    ("", None),  # decode_test ("empty:")
    ("~", None),  # decode_test
    ("null", None),  # decode_test
    ("Null", None),
    ("NULL", None),
    (".inf", float("inf")),
    (".Inf", float("inf")),  # decode_test
    ("+.INF", float("inf")),
    ("-.inf", float("-inf")),  # decode_test
    ("-.Inf", float("-inf")),  # decode_test
    # integers: Go's ParseInt(s, 0, 64) after every _ is removed
    ("10", 10),  # decode_test
    ("-10", -10),  # decode_test
    ("+685_230", 685230),  # decode_test
    ("0755", 493),  # a leading 0 is octal, as in YAML 1.1
    ("02472256", 685230),  # decode_test
    ("-02472256", -685230),  # decode_test
    ("0o2472256", 685230),  # decode_test
    ("-0o2472256", -685230),  # decode_test
    ("0O17", 15),
    ("0xA", 10),  # decode_test
    ("0x_0A_74_AE", 685230),  # decode_test
    ("0XfF", 255),
    ("0b10", 2),  # decode_test
    ("0b1010_0111_0100_1010_1110", 685230),  # decode_test
    ("-0b101010", -42),  # decode_test
    ("-0b" + "1" + "0" * 63, -(2**63)),  # decode_test
    ("0b-101", -5),  # the 0b branch parses what follows with its sign
    ("0o+17", 15),
    ("1__0", 10),
    ("1_", 1),
    ("-_1", -1),
    ("0", 0),
    ("-0", 0),
    ("00", 0),
    ("9223372036854775807", 2**63 - 1),
    ("-9223372036854775808", -(2**63)),
    ("9223372036854775808", 2**63),  # decode_test (int_overflow; ParseUint takes it)
    ("18446744073709551615", 2**64 - 1),
    # floats: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ after _ is removed
    ("1e3", 1000.0),  # a string in YAML 1.1
    ("1E-2", 0.01),
    ("6.8523e+5", 6.8523e5),  # decode_test
    ("685.230_15e+03", 685.23015e03),  # decode_test
    ("685_230.15", 685230.15),  # decode_test
    ("0.1", 0.1),  # decode_test
    (".1", 0.1),  # decode_test
    ("-.1", -0.1),  # decode_test
    ("1.", 1.0),
    ("08", 8.0),  # not octal, so ParseFloat's 8
    ("09.5", 9.5),
    ("18446744073709551616", 2.0**64),  # past ParseUint: a float
    ("-9223372036854775809", -(2.0**63)),
    (".5_5", 0.55),
    ("1e-400", 0.0),
    ("9" * 5000, "9" * 5000),  # too large for a float64: a string
]


def same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@PARSERS
@pytest.mark.parametrize(("text", "value"), GO_YAML_V3, ids=[repr(t)[:30] for t, _ in GO_YAML_V3])
def test_plain_scalars_mean_what_they_mean_to_pulumi(loader: Loader, text: str, value: Any) -> None:
    read = yaml_document(f"k: {text}\nl:\n  - {text}\n".encode(), "f", loader=loader)
    assert same_value(read["k"], value), (text, read["k"])
    assert same_value(read["l"][0], value)
    if value is not None and not isinstance(value, float) and len(text) < 1024:
        # Keys are resolved the same way (a share or tenant named `no` stays "no").
        assert same_value(
            next(iter(yaml_document(f"{text}: 1\n".encode(), "f", loader=loader))), value
        )


@PARSERS
def test_nan_is_a_float_as_in_go_yaml(loader: Loader) -> None:
    for text in (".nan", ".NaN", ".NAN"):
        value = yaml_document(f"k: {text}\n".encode(), "f", loader=loader)["k"]
        assert isinstance(value, float)
        assert math.isnan(value)


@PARSERS
@pytest.mark.parametrize(("text", "value"), GO_YAML_V3[:30])
def test_quoted_or_block_scalars_are_always_strings(loader: Loader, text: str, value: Any) -> None:
    del value
    document = yaml_document(
        f"a: '{text}'\nb: \"{text}\"\nc: |-\n  {text}\n".encode(), "f", loader=loader
    )
    assert document == {"a": text, "b": text, "c": text} or text == ""


@PARSERS
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('!!int "0x1F"', 31),
        ("!!float 1", 1.0),
        ("!!float '1e3'", 1000.0),
        ("!!str 0755", "0755"),
        ("!!str yes", "yes"),
        ("!!bool true", True),
        ("!!null ~", None),
    ],
)
def test_an_explicit_tag_resolves_the_text_as_go_yaml_does(
    loader: Loader, text: str, value: Any
) -> None:
    assert same_value(yaml_document(f"k: {text}\n".encode(), "f", loader=loader)["k"], value)


@PARSERS
@given(number=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_any_int64_in_any_go_spelling_reads_back(loader: Loader, number: int) -> None:
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    spellings = [str(number), f"{sign}0x{magnitude:x}", f"{sign}0o{magnitude:o}"]
    spellings += [f"{sign}0b{magnitude:b}", f"{sign}0{magnitude:o}", f"{number:_}"]
    for text in spellings:
        assert yaml_document(f"k: {text}\n".encode(), "f", loader=loader) == {"k": number}, text


@PARSERS
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_written_by_python_reads_back(loader: Loader, number: float) -> None:
    text = repr(number)
    assert same_value(yaml_document(f"k: {text}\n".encode(), "f", loader=loader)["k"], number)


@PARSERS
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1))
def test_a_word_is_a_string_unless_it_is_true_false_or_null(loader: Loader, word: str) -> None:
    value = yaml_document(f"k: {word}\n".encode(), "f", loader=loader)["k"]
    table: dict[str, bool | None] = {
        "true": True,
        "True": True,
        "TRUE": True,
        "false": False,
        "False": False,
    }
    table |= {"FALSE": False, "null": None, "Null": None, "NULL": None}
    assert same_value(value, table.get(word, word))


# -- bytes that are not YAML text ----------------------------------------------------------------


@PARSERS
@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        (b"a: 1\nb: caf\xe9\n", (2, 7), "not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (b"a: 1\n\x00", (2, 1), "a NUL byte: this is not a text file"),
        (b"a: \x07\n", (1, 4), "character U+0007 is not allowed in YAML; remove it"),
    ],
)
def test_bytes_that_are_not_yaml_text(
    loader: Loader, data: bytes, where: tuple[int, int], reason: str
) -> None:
    error = refusal(data, loader)

    assert ((error.line, error.column), error.reason) == (where, reason)


@PARSERS
def test_a_syntax_error_names_the_place_never_the_line_that_may_hold_a_password(
    loader: Loader,
) -> None:
    data = b"backend:\n  service_instance_password: hunter2: x\n"

    error = refusal(data, loader)

    assert (error.line, error.column) == (2, 37)
    assert error.reason.startswith("not valid YAML: mapping values are not allowed")
    assert "hunter2" not in str(error)


@PARSERS
def test_long_tokens_from_the_input_are_cut_short(loader: Loader) -> None:
    anchor = "a" * 500

    error = refusal(f"x: *{anchor}\n".encode(), loader)

    assert error.reason.startswith("not valid YAML: found undefined alias 'aaaa")
    assert len(str(error)) < 120


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    # Padding with a comment: the content is valid YAML, so only the size can refuse it.
    just_fits = tmp_path / "fits.yaml"
    just_fits.write_bytes(b"a: 1\n#" + b"x" * (MAX_FILE_BYTES - 6))
    too_big = tmp_path / "big.yaml"
    too_big.write_bytes(b"a: 1\n#" + b"x" * (MAX_FILE_BYTES - 5))

    assert load_yaml(just_fits) == {"a": 1}
    with pytest.raises(OperatorFileError) as caught:
        load_yaml(too_big)
    assert str(caught.value) == (
        f"{too_big}: larger than 1024 KiB, the limit for this file; is it the right file?"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [("missing.yaml", "no such file; check the path"), (".", "is a directory")],
)
def test_a_path_that_is_no_file(tmp_path: Path, name: str, reason: str) -> None:
    with pytest.raises(OperatorFileError) as caught:
        load_yaml(tmp_path / name)
    assert caught.value.reason.startswith(reason)


# -- JSON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": 1,\n "b": }', "l.json, line 2, column 7: not valid JSON: Expecting value"),
        (b'{"a": 1, "a": 2}', "l.json: duplicate key 'a'; keep one"),
        (b'{"a": NaN}', "l.json: NaN is not a JSON number"),
        (b"[" + b"9" * 5000 + b"]", "l.json: not valid JSON: a number too long to read"),
        (nested(MAX_NESTING + 1), f"l.json, line 1, column 33: nested more than {MAX_NESTING}"),
        (nested(100_000), f"l.json, line 1, column 33: nested more than {MAX_NESTING}"),
        (b'{"a": "\xff"}', "l.json, line 1, column 8: not UTF-8 text (byte 0xff)"),
    ],
)
def test_bad_json_is_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(OperatorFileError) as caught:
        json_document(data, "l.json")
    assert str(caught.value).startswith(message)


def test_brackets_inside_json_strings_are_not_nesting() -> None:
    # An escaped quote does not end a string: the brackets after it are still inside.
    text = '{"a": "' + "[" * 100 + '", "b": ["\\"' + "{" * 100 + '"]}'

    assert json_document(text.encode(), "l.json") == {"a": "[" * 100, "b": ['"' + "{" * 100]}
    assert json_document(nested(MAX_NESTING), "l.json") is not None


# -- any bytes at all ----------------------------------------------------------------------------

YAML_PIECES = st.sampled_from(
    [
        "a",
        "b",
        "1",
        "0x1F",
        "-1.5e3",
        "~",
        "null",
        "true",
        "yes",
        "2024-01-01",
        " ",
        "  ",
        "\n",
        "\t",
        ":",
        ": ",
        "- ",
        "? ",
        ",",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "&b ",
        "*a",
        "*b",
        "<<: ",
        "!!binary ",
        "!!set ",
        "!!python/name:os.system ",
        "!x ",
        "'",
        '"',
        "\\x00",
        "#",
        "|",
        ">",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "%TAG ! tag:x,2000:\n",
        "\x00",
        "\ufeff",
        "\x85",
        "é",
        "9" * 5000,
    ]
)
YAML_TEXT = st.lists(YAML_PIECES, max_size=60).map("".join)


def plain_size(value: Any, depth: int = 1) -> int:
    """Values in ``value`` as a consumer walking it would see them; asserts plain data within
    the limits on the way (stops counting past MAX_VALUES)."""
    assert depth <= MAX_NESTING + 1
    if isinstance(value, dict):
        total = 1
        for key, item in value.items():
            assert isinstance(key, str | int | float | bool | type(None))
            total += 1 + plain_size(item, depth + 1)
            assert total <= MAX_VALUES
        return total
    if isinstance(value, list):
        total = 1
        for item in value:
            total += plain_size(item, depth + 1)
            assert total <= MAX_VALUES
        return total
    assert isinstance(value, str | int | float | bool | type(None)), type(value)
    return 1


def outcome(call: Callable[[], Any], error: type[Exception]) -> Any:
    """What ``call`` returns, or the ``error`` it raises; any other exception fails the test."""
    try:
        return call()
    except error as exc:
        return exc


def returns_plain_data_or_one_line(read: Callable[[bytes], Any], data: bytes) -> None:
    result = outcome(lambda: read(data), OperatorFileError)
    if isinstance(result, OperatorFileError):
        assert "\n" not in str(result)
        assert len(result.reason) <= 300
    else:
        plain_size(result)


@PARSERS
@given(data=st.binary(max_size=300) | YAML_TEXT.map(lambda t: t.encode("utf-8", "replace")))
def test_any_bytes_as_yaml_give_plain_data_or_one_line(loader: Loader, data: bytes) -> None:
    returns_plain_data_or_one_line(lambda d: yaml_document(d, "f.yaml", loader=loader), data)


JSON_PIECES = st.sampled_from(
    ['{', '}', '[', ']', '"a"', '"\\"', ':', ',', '1', '-0.5e9', 'true', 'null', 'NaN',
     'Infinity', ' ', '\n', '"\\u0000"', '"\\ud800"', "9" * 5000, "\xff"]
)  # fmt: skip


@given(
    data=st.binary(max_size=300) | st.lists(JSON_PIECES, max_size=60).map("".join).map(str.encode)
)
def test_any_bytes_as_json_give_plain_data_or_one_line(data: bytes) -> None:
    returns_plain_data_or_one_line(lambda d: json_document(d, "l.json"), data)


@given(data=st.binary(max_size=300))
def test_any_bytes_as_text_give_text_or_one_line(data: bytes) -> None:
    result = outcome(lambda: text_of(data, "manila.conf"), OperatorFileError)
    if isinstance(result, OperatorFileError):
        assert "\n" not in str(result)
    else:
        assert "\x00" not in result
