"""The value codec: exact round trips, clear refusals, and safety on tampered bytes."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import subprocess
import sys
from collections import OrderedDict, defaultdict
from enum import IntEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import MAX_DEPTH, CodecError, UnsupportedValueError, decode_value, encode_value

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(categories=["Cs", "Lu", "Nd"]))  # lone surrogates too
    | st.binary()
    | st.datetimes()
    | st.datetimes(timezones=st.timezones())
    | st.dates()
    | st.timedeltas()
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children)
    | st.lists(children).map(tuple)
    | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equality that also checks exact types, NaN, the sign of zero and datetime fields."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        assert isinstance(b, dt.datetime)
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset()
            and a.fold == b.fold
        )
    return a == b


@given(values)
def test_round_trip_is_exact(value: object) -> None:
    """Every supported value decodes to an equal value of exactly the same types."""
    assert same(decode_value(encode_value(value)), value)


SAMPLES = """
import datetime as dt
SAMPLE = [None, True, False, 0, -1, 2**63 - 1, 2**70, -(2**90), 0.5, -0.0, float("inf"), "",
          "héllo", "\\udcff", b"\\x00\\xff", [1, [2]], (3, (4,)), {"b": 1, "a": {"z": []}},
          {str(i): i for i in range(50)}, dt.datetime(2026, 12, 2, 7, 30, 0, 5),
          dt.datetime(2026, 12, 2, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
          dt.date(1999, 12, 31), dt.timedelta(days=-1, microseconds=7)]
"""


def test_encoding_is_the_same_in_every_process() -> None:
    """Equal values encode to equal bytes in other processes too, whatever their hash
    seeds (files and RPC payloads are compared and shared across processes)."""
    program = SAMPLES + (
        "from storage import encode_value\n"
        "import sys\n"
        "sys.stdout.write(encode_value(SAMPLE).hex())\n")
    namespace: dict[str, object] = {}
    exec(SAMPLES, namespace)  # the same sample, built here
    here = encode_value(namespace["SAMPLE"]).hex()
    for seed in ("1", "2", "random"):
        there = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert there == here


def test_the_format_is_stable() -> None:
    """Bytes written by earlier versions decode: the format itself is fixed."""
    assert encode_value({"n": [1, "x"], "t": (None, True)}) == bytes.fromhex(
        "64 02000000"  # d: a dict of 2 items
        " 01000000 6e"  # key "n"
        " 6c 02000000"  # l: a list of 2
        " 69 0100000000000000"  # i: 1, 8 bytes little-endian
        " 73 01000000 78"  # s: "x"
        " 01000000 74"  # key "t"
        " 74 02000000 4e 54"  # t: a tuple of 2: N (None), T (True)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(bytearray(b"ab"), b"ab", id="bytearray"),
        pytest.param(memoryview(b"cd"), b"cd", id="memoryview"),
    ],
)
def test_bytes_likes_come_back_as_bytes(value: object, expected: bytes) -> None:
    assert decode_value(encode_value(value)) == expected


def test_aware_datetime_keeps_its_offset_not_its_zone_name() -> None:
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
    value = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=tz)
    decoded = decode_value(encode_value(value))
    assert isinstance(decoded, dt.datetime)
    assert decoded == value
    assert decoded.utcoffset() == dt.timedelta(hours=5, minutes=30)


class Color(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param({1, 2}, "value is of type 'set'", id="set"),
        pytest.param({"a": [1, {"b": object()}]}, "value['a'][1]['b'] is of type 'object'",
                     id="nested"),
        pytest.param({"a": {1: "x"}}, "dict key 1 of type 'int' in value['a']", id="int-key"),
        pytest.param(Color.RED, "value is of type tests.storage.test_codec.Color",
                     id="int-subclass"),
        pytest.param(OrderedDict(a=1), "OrderedDict", id="dict-subclass"),
        pytest.param(defaultdict(list), "defaultdict", id="defaultdict"),
        pytest.param(dt.time(1, 2), "value is of type datetime.time", id="time"),
        pytest.param([1, 2, 3.5j], "value[2] is of type 'complex'", id="complex"),
    ],
)
def test_unsupported_values_name_their_type_and_place(value: object, message: str) -> None:
    with pytest.raises(UnsupportedValueError, match=None) as info:
        encode_value(value)
    assert message in str(info.value)
    assert isinstance(info.value, TypeError)


def test_cycle_is_a_clear_error() -> None:
    loop: list[object] = [1]
    loop.append({"back": loop})
    with pytest.raises(UnsupportedValueError, match=r"value\[1\]\['back'\] refers back"):
        encode_value(loop)


def test_depth_limit() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert decode_value(encode_value(deep)) == deep
    with pytest.raises(UnsupportedValueError, match="nested more than 100"):
        encode_value([deep])


def test_error_names_the_root_it_was_given() -> None:
    with pytest.raises(UnsupportedValueError, match=r"argument 2\[0\] is of type 'set'"):
        encode_value([set()], name="argument 2")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"?", id="unknown-tag"),
        pytest.param(b"s\xff\xff\xff\x7fabc", id="length-past-end"),
        pytest.param(b"i\x01\x02", id="short-int"),
        pytest.param(encode_value("x") + b"junk", id="trailing-bytes"),
        pytest.param(b"l\x05\x00\x00\x00N", id="missing-items"),
        pytest.param(b"l\x01\x00\x00\x00" * 200 + b"N", id="nested-too-deep"),
        pytest.param(b"s\x02\x00\x00\x00\xc3\x28", id="bad-utf8"),
        pytest.param(b"a\x00\x00\x01\x01", id="year-zero"),
        pytest.param(b"\x80\x04\x95", id="pickle-header"),
    ],
)
def test_damaged_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_value(data)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_codec_error(data: bytes) -> None:
    """Whatever a tampered file holds, decoding returns a value or raises CodecError."""
    with contextlib.suppress(CodecError):
        decode_value(data)
