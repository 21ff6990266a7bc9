"""What crosses the process boundary: JSON for plain values, safetensors for tensors.

Nothing is pickled, and the receiver rebuilds every tensor itself from raw bytes, so what
arrives is always a plain `torch.Tensor` of the declared dtype and shape: a tensor subclass
with a lying `__eq__` or `__abs__` cannot survive the trip.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor

from lmgrade.core import layouts

MAX_MESSAGE_BYTES = 1 << 30  # a reply larger than 1 GiB is refused, not read
MAX_HEADER_BYTES = 64 << 20
MAX_DEPTH = 64


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
            tensors[name] = v.detach().as_subclass(Tensor).to("cpu").contiguous().clone()
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


def send(fd: int, header: dict, tensors: dict[str, Tensor] | None = None) -> None:
    head = json.dumps(header).encode()
    blob = save_tensors(tensors) if tensors else b""
    data = struct.pack("<QQ", len(head), len(blob)) + head + blob
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, max_header: int = MAX_HEADER_BYTES, max_depth: int = MAX_DEPTH) -> tuple[dict, dict[str, Tensor]]:
    """One message; its sizes and the JSON part's nesting are checked before anything is parsed."""
    head_len, blob_len = struct.unpack("<QQ", _read_exactly(fd, 16))
    if head_len > max_header or head_len + blob_len > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {head_len} + {blob_len} bytes exceeds the limits")
    head = _read_exactly(fd, head_len)
    if nesting_depth(head, max_depth) > max_depth:
        raise ProtocolError(f"message nested deeper than {max_depth} levels")
    try:
        header = json.loads(head)
        tensors = load_tensors(_read_exactly(fd, blob_len)) if blob_len else {}
    except EOFError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever is malformed, it is refused the same way
        raise ProtocolError(f"malformed message: {type(error).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed message: not an object")
    return header, tensors
