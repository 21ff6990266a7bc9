"""What crosses the process boundary: JSON for plain values, raw bytes for tensors.

A message is three lengths (little-endian u64), the JSON header, the JSON tensor table (one
[name, dtype, shape] per tensor) and the tensors' bytes, each tensor starting at the next multiple
of ALIGN bytes. Nothing is pickled, and the receiver rebuilds every tensor itself from raw bytes
after checking the table against the bytes it got (dtypes from a fixed list, sizes that add up),
so what arrives is always a plain `torch.Tensor` of the declared dtype and shape: a tensor subclass
with a lying `__eq__` or `__abs__` cannot survive the trip. (It was safetensors: the same checks,
but its save costs about 30 µs per tensor, and a grading sends some 20,000 tensors.)
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any

import torch
from torch import Tensor

from lmgrade.core import layouts

MAX_MESSAGE_BYTES = 1 << 30  # a reply larger than 1 GiB is refused, not read
MAX_HEADER_BYTES = 64 << 20
MAX_DEPTH = 64
MAX_DIMS = 64
ALIGN = 64  # each tensor's bytes start at a multiple of ALIGN from the first one's: aligned for every dtype
# The dtypes that cross, by their wire names.
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex128, torch.complex64,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.bool)}
WIRE_NAME = {dtype: name for name, dtype in DTYPES.items()}


class ProtocolError(ValueError):
    """A message over the limits or malformed: refused before it is parsed."""


def nesting_depth(data: bytes, limit: int) -> int:
    """The deepest nesting of [ and { in a JSON text (strings skipped); stops counting past limit."""
    brackets = data.count(b"[") + data.count(b"{")
    if brackets <= limit:  # the usual case: cannot be deeper than the number of brackets
        return brackets
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def encode(value: Any) -> tuple[Any, dict[str, Tensor]]:
    """(a JSON-able skeleton, the tensors it refers to by name)."""
    tensors: dict[str, Tensor] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, Tensor):
            name = f"t{len(tensors)}"
            # A plain tensor rebuilt from the raw values: drops subclasses and autograd history.
            tensors[name] = v.detach().as_subclass(Tensor).to("cpu")  # send() copies its bytes
            return {"__tensor__": name, "requires_grad": bool(v.requires_grad), "layout": layouts.describe(v),
                    "device": v.device.type}
        if isinstance(v, dict):
            return {"__dict__": [[str(k), walk(x)] for k, x in v.items()]}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise TypeError(f"cannot send a {type(v).__name__} across the process boundary")

    return walk(value), tensors


def decode(skeleton: Any, tensors: dict[str, Tensor], on_tensor=None) -> Any:
    def walk(v: Any) -> Any:
        if isinstance(v, dict) and "__tensor__" in v:
            t = tensors[v["__tensor__"]]
            return on_tensor(t, v) if on_tensor else t
        if isinstance(v, dict) and "__dict__" in v:
            return {k: walk(x) for k, x in v["__dict__"]}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(skeleton)


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def send(fd: int, header: dict, tensors: dict[str, Tensor] | None = None) -> None:
    head = json.dumps(header).encode()
    table, placed, end = [], [], 0
    for name, tensor in (tensors or {}).items():
        if tensor.dtype not in WIRE_NAME:
            raise TypeError(f"cannot send a {tensor.dtype} tensor across the process boundary")
        table.append([name, WIRE_NAME[tensor.dtype], list(tensor.shape)])
        start = _aligned(end)
        placed.append((start, tensor.detach()))
        end = start + tensor.numel() * tensor.element_size()
    table_bytes = json.dumps(table).encode() if table else b""
    blob = bytearray(end)
    if end:
        as_bytes = torch.frombuffer(blob, dtype=torch.uint8)
        for start, tensor in placed:  # copy_ writes any layout (sliced, transposed, expanded) out row-major
            if tensor.numel():
                size = tensor.numel() * tensor.element_size()
                as_bytes[start : start + size].view(tensor.dtype).view(tensor.shape).copy_(tensor)
    for part in (struct.pack("<QQQ", len(head), len(table_bytes), end) + head + table_bytes, blob):
        view = memoryview(part)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _read_exactly(fd: int, n: int) -> bytearray:
    # Grown as the bytes arrive: a size the other side declares but never sends costs no memory.
    buffer = bytearray()
    while len(buffer) < n:
        chunk = os.read(fd, min(n - len(buffer), 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        buffer += chunk
    return buffer


def _tensors(table: Any, blob: bytearray) -> dict[str, Tensor]:
    """The tensors a message's table describes, views of its bytes; ProtocolError unless they add up exactly."""
    if not isinstance(table, list):
        raise ProtocolError("malformed tensor table")
    tensors: dict[str, Tensor] = {}
    end = 0
    for entry in table:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and entry[1] in DTYPES
                and isinstance(entry[2], list) and len(entry[2]) <= MAX_DIMS
                and all(type(size) is int and size >= 0 for size in entry[2])):
            raise ProtocolError("malformed tensor table entry")
        name, dtype, shape = entry[0], DTYPES[entry[1]], entry[2]
        if name in tensors:
            raise ProtocolError(f"tensor {name!r} sent twice")
        numel = math.prod(shape)
        start = _aligned(end)
        end = start + numel * dtype.itemsize
        if end > len(blob):
            raise ProtocolError("the tensor table describes more bytes than the message holds")
        tensors[name] = (torch.frombuffer(blob, dtype=dtype, count=numel, offset=start).view(shape) if numel
                         else torch.empty(shape, dtype=dtype))
    if end != len(blob):
        raise ProtocolError("the message holds bytes its tensor table does not describe")
    return tensors


def receive(fd: int, max_header: int = MAX_HEADER_BYTES, max_depth: int | None = MAX_DEPTH) -> tuple[dict, dict[str, Tensor]]:
    """One message; its sizes and its header's nesting (unless max_depth is None: the child, reading what the
    grader sends) are checked before anything is parsed."""
    head_len, table_len, blob_len = struct.unpack("<QQQ", _read_exactly(fd, 24))
    # The table is JSON too, parsed into a list per tensor: the header's limit holds for it as well.
    if head_len > max_header or table_len > max_header or head_len + table_len + blob_len > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {head_len} + {table_len} + {blob_len} bytes exceeds the limits")
    if blob_len and not table_len:
        raise ProtocolError("the message holds bytes its tensor table does not describe")
    head = _read_exactly(fd, head_len)
    if max_depth is not None and nesting_depth(head, max_depth) > max_depth:
        raise ProtocolError(f"message nested deeper than {max_depth} levels")
    table = _read_exactly(fd, table_len) if table_len else None  # its shape is checked entry by entry
    try:
        header = json.loads(head)
        tensors = _tensors(json.loads(table), _read_exactly(fd, blob_len)) if table is not None else {}
    except (EOFError, ProtocolError):
        raise
    except Exception as error:  # noqa: BLE001 - whatever is malformed, it is refused the same way
        raise ProtocolError(f"malformed message: {type(error).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed message: not an object")
    return header, tensors
