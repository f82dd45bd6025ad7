"""The value codec: how KV values (and, later, RPC arguments) become bytes and back.

It is a small tagged binary format, decoded without ever constructing an arbitrary object,
so a tampered file can at worst produce a :class:`CodecError`, never run code (this is why
dobox does not use pickle). Every value starts with a one-byte tag:

======  ==========================  =============================================
tag     type                        payload
======  ==========================  =============================================
``N``   ``None``                    (none)
``T``   ``True``                    (none)
``F``   ``False``                   (none)
``i``   ``int`` in 64 bits          8 bytes, signed little-endian
``I``   any other ``int``           u32 length + signed little-endian bytes
``f``   ``float``                   8 bytes, IEEE 754 double (NaN, inf, -0.0 kept)
``s``   ``str``                     u32 length + UTF-8 (lone surrogates kept)
``b``   ``bytes``                   u32 length + raw bytes
``l``   ``list``                    u32 count + items
``t``   ``tuple``                   u32 count + items
``d``   ``dict`` with ``str`` keys  u32 count + (u32 length + UTF-8 key, value)*
``D``   ``datetime.datetime``       date and time fields, fold, UTC offset if aware
``a``   ``datetime.date``           year, month, day
``e``   ``datetime.timedelta``      days, seconds, microseconds
======  ==========================  =============================================

Types are matched exactly, not by ``isinstance``: a subclass (an ``IntEnum``, a ``str``
subclass, a ``defaultdict``) is refused rather than silently turned into its base type.
``bytearray`` and ``memoryview`` are accepted and come back as ``bytes``. Aware datetimes
keep their UTC offset but not the name of their zone. Nesting is limited to
:data:`MAX_DEPTH` containers, which also turns a value that contains itself into a clear
error instead of a ``RecursionError``.
"""

from __future__ import annotations

import datetime as _dt
import struct

from ._errors import CodecError, UnsupportedValueError

MAX_DEPTH = 100
"""How many containers may nest inside each other in one value."""

SUPPORTED_TYPES = (
    "None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
    "datetime.datetime, datetime.date and datetime.timedelta"
)

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_DATETIME = struct.Struct("<HBBBBBIBB")  # y m d H M S us fold has_offset
_DATE = struct.Struct("<HBB")
_TIMEDELTA = struct.Struct("<iiI")

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

_pack_u32 = _U32.pack
_pack_i64 = _I64.pack
_pack_f64 = _F64.pack
_unpack_u32 = _U32.unpack_from
_unpack_i64 = _I64.unpack_from
_unpack_f64 = _F64.unpack_from

_datetime = _dt.datetime
_date = _dt.date
_timedelta = _dt.timedelta


class _Unsupported(Exception):
    """Raised inside the encoder; the public error is built once, with the value's path."""


def encode_value(value: object, *, name: str = "value") -> bytes:
    """Encode ``value`` into the codec's bytes.

    ``name`` is how error messages call the value's root (``"value"``, ``"argument 1"``).

    Raises:
        UnsupportedValueError: (a ``TypeError``) for a value of a type the codec does not
            carry, a dict key that is not a ``str``, or nesting deeper than
            :data:`MAX_DEPTH`; the message names the type and where in the value it sits.
    """
    t = type(value)
    # Scalars at the top level are the common case for KV values: no buffer needed.
    if t is str:
        raw: bytes = value.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]  # t is str
        return b"s" + _pack_u32(len(raw)) + raw
    if t is int and _I64_MIN <= value <= _I64_MAX:  # type: ignore[operator]  # t is int
        return b"i" + _pack_i64(value)
    if value is None:
        return b"N"
    out = bytearray()
    try:
        _encode(value, out, 0)
    except _Unsupported:
        raise UnsupportedValueError(_explain_unsupported(value, name)) from None
    return bytes(out)


def _encode(v: object, out: bytearray, depth: int) -> None:
    t = type(v)
    if t is str:
        raw = v.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]  # t is str
        out += b"s"
        out += _pack_u32(len(raw))
        out += raw
    elif t is int:
        if _I64_MIN <= v <= _I64_MAX:  # type: ignore[operator]  # t is int
            out += b"i"
            out += _pack_i64(v)
        else:
            big: int = v  # type: ignore[assignment]  # t is int
            raw = big.to_bytes((big.bit_length() + 8) // 8, "little", signed=True)
            out += b"I"
            out += _pack_u32(len(raw))
            out += raw
    elif t is float:
        out += b"f"
        out += _pack_f64(v)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise _Unsupported
        items: dict[object, object] = v  # type: ignore[assignment]  # t is dict
        out += b"d"
        out += _pack_u32(len(items))
        for key, item in items.items():
            if type(key) is not str:
                raise _Unsupported
            raw = key.encode("utf-8", "surrogatepass")
            out += _pack_u32(len(raw))
            out += raw
            _encode(item, out, depth + 1)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise _Unsupported
        seq: list[object] = v  # type: ignore[assignment]  # t is list or tuple
        out += b"l" if t is list else b"t"
        out += _pack_u32(len(seq))
        for item in seq:
            _encode(item, out, depth + 1)
    elif v is None:
        out += b"N"
    elif v is True:
        out += b"T"
    elif v is False:
        out += b"F"
    elif t is bytes or t is bytearray or t is memoryview:
        raw = bytes(v)  # type: ignore[call-overload]  # t is a bytes-like type
        out += b"b"
        out += _pack_u32(len(raw))
        out += raw
    elif t is _datetime:
        out += _encode_datetime(v)  # type: ignore[arg-type]  # t is datetime
    elif t is _date:
        d: _dt.date = v  # type: ignore[assignment]  # t is date
        out += b"a"
        out += _DATE.pack(d.year, d.month, d.day)
    elif t is _timedelta:
        td: _dt.timedelta = v  # type: ignore[assignment]  # t is timedelta
        out += b"e"
        out += _TIMEDELTA.pack(td.days, td.seconds, td.microseconds)
    else:
        raise _Unsupported


def _encode_datetime(v: _dt.datetime) -> bytes:
    offset = v.utcoffset()
    head = _DATETIME.pack(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.fold,
        offset is not None,
    )
    if offset is None:
        return b"D" + head
    return b"D" + head + _pack_i64(offset // _timedelta(microseconds=1))


def _explain_unsupported(value: object, name: str) -> str:
    """Find the first value the encoder refuses, in the encoder's order, and say why."""
    path = name
    seen: list[int] = []  # ids of the containers on the current path, to spot cycles
    node = value
    while True:
        t = type(node)
        if t in (dict, list, tuple):
            if id(node) in seen:
                return f"{_short(path)} refers back to a container holding it (a cycle)"
            if len(seen) >= MAX_DEPTH:
                return f"{_short(path)} is nested more than {MAX_DEPTH} containers deep"
            seen.append(id(node))
            child = _first_bad_child(node, depth=len(seen))
            if child is None:  # pragma: no cover - the encoder refused something here
                return f"{path} cannot be stored"
            step, bad_key, node = child
            if bad_key:
                return (
                    f"dict key {node!r} of type {type(node).__name__!r} in {path} cannot be "
                    "stored: dict keys must be str"
                )
            path += step
            continue
        return (
            f"{path} is of type {t.__module__}.{t.__qualname__}"
            if t.__module__ != "builtins"
            else f"{path} is of type {t.__qualname__!r}"
        ) + f", which cannot be stored; supported types: {SUPPORTED_TYPES}"


def _short(path: str) -> str:
    return path if len(path) <= 120 else f"{path[:60]}...{path[-40:]}"


def _first_bad_child(node: object, *, depth: int) -> tuple[str, bool, object] | None:
    """The first child of a container that fails to encode: (path step, is a bad key, child).

    ``depth`` is the number of containers above the children, as the encoder counts them.
    """
    if type(node) is dict:
        for key, item in node.items():
            if type(key) is not str:
                return "", True, key
            if not _encodes(item, depth):
                return f"[{key!r}]", False, item
        return None
    seq: list[object] = node  # type: ignore[assignment]  # a list or a tuple
    for index, item in enumerate(seq):
        if not _encodes(item, depth):
            return f"[{index}]", False, item
    return None


def _encodes(item: object, depth: int) -> bool:
    try:
        _encode(item, bytearray(), depth)
    except _Unsupported:
        return False
    return True


def decode_value(data: bytes) -> object:
    """Decode bytes made by :func:`encode_value`.

    Raises:
        CodecError: (a ``ValueError``) if the bytes are not a whole, valid encoding;
            nothing is ever executed or imported, whatever the bytes hold.
    """
    if data == b"N":  # None: the result of most calls
        return None
    if type(data) is not bytes:
        raise CodecError(
            f"stored value is damaged: expected bytes, found {type(data).__name__}"
        )
    try:
        value, end = _decode(data, 0, 0)
    except CodecError:
        raise
    except (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise CodecError(f"stored value is damaged and cannot be decoded: {exc}") from exc
    if end != len(data):
        raise CodecError(
            f"stored value is damaged: {len(data) - end} unexpected bytes after the value"
        )
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    # Hot path. A length that runs past the end needs no check of its own: the slice comes
    # back short and the next read, or decode_value's final length check, fails.
    tag = data[pos]
    pos += 1
    if tag == 0x73:  # s
        end = pos + 4 + _unpack_u32(data, pos)[0]
        return data[pos + 4 : end].decode("utf-8", "surrogatepass"), end
    if tag == 0x69:  # i
        return _unpack_i64(data, pos)[0], pos + 8
    if tag == 0x66:  # f
        return _unpack_f64(data, pos)[0], pos + 8
    if tag == 0x64 or tag == 0x6C or tag == 0x74:  # d l t
        if depth >= MAX_DEPTH:
            raise CodecError(f"stored value is nested more than {MAX_DEPTH} containers deep")
        (count,) = _unpack_u32(data, pos)
        pos += 4
        depth += 1
        if tag == 0x64:
            result: dict[str, object] = {}
            for _ in range(count):
                end = pos + 4 + _unpack_u32(data, pos)[0]
                key = data[pos + 4 : end].decode("utf-8", "surrogatepass")
                result[key], pos = _decode(data, end, depth)
            return result, pos
        items: list[object] = []
        append = items.append
        for _ in range(count):
            item, pos = _decode(data, pos, depth)
            append(item)
        return (items if tag == 0x6C else tuple(items)), pos
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == 0x62:  # b
        end = pos + 4 + _unpack_u32(data, pos)[0]
        return data[pos + 4 : end], end
    if tag == 0x49:  # I
        end = pos + 4 + _unpack_u32(data, pos)[0]
        return int.from_bytes(data[pos + 4 : end], "little", signed=True), end
    if tag == 0x44:  # D
        year, month, day, hour, minute, second, micro, fold, aware = _DATETIME.unpack_from(
            data, pos
        )
        pos += _DATETIME.size
        tz = None
        if aware:
            tz = _dt.timezone(_timedelta(microseconds=_unpack_i64(data, pos)[0]))
            pos += 8
        return _datetime(year, month, day, hour, minute, second, micro, tz, fold=fold), pos
    if tag == 0x61:  # a
        return _date(*_DATE.unpack_from(data, pos)), pos + _DATE.size
    if tag == 0x65:  # e
        days, seconds, micro = _TIMEDELTA.unpack_from(data, pos)
        return _timedelta(days, seconds, micro), pos + _TIMEDELTA.size
    raise CodecError(f"stored value is damaged: unknown type tag {tag:#04x}")
