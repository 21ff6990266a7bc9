"""lmgrade.sandbox.wire: tensors cross as what was sent, and a message whose tensor table does not add up is refused."""

from __future__ import annotations

import json
import os
import struct
import threading

import pytest
import torch

from lmgrade.sandbox import wire


@pytest.fixture
def channel():
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        try:
            os.close(fd)
        except OSError:  # a test closed it
            pass


def _send_in_thread(fd: int, header: dict, tensors: dict) -> threading.Thread:
    sender = threading.Thread(target=wire.send, args=(fd, header, tensors))  # a big message fills the pipe
    sender.start()
    return sender


def test_every_dtype_shape_and_layout_arrives_as_a_plain_tensor_with_the_same_values(channel):
    read, write = channel
    sent = {f"t_{name}": (torch.randn(3, 5) * 10).to(dtype) for name, dtype in wire.DTYPES.items()}
    sent.update(scalar=torch.tensor(3.5), empty=torch.empty(0, 4), transposed=torch.randn(4, 6).T,
                big=torch.randn(300, 1000), odd_bytes=torch.ones(3, dtype=torch.int8),
                one_strided_element=torch.arange(4)[::2][:1], expanded=torch.randn(3, 1).expand(3, 5))
    sender = _send_in_thread(write, {"a": [1, {"b": 2}]}, sent)
    header, got = wire.receive(read)
    sender.join()
    assert header == {"a": [1, {"b": 2}]} and list(got) == list(sent)
    for name, tensor in sent.items():
        assert type(got[name]) is torch.Tensor, name
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape and torch.equal(got[name], tensor), name


def _raw(write: int, table, blob: bytes) -> None:
    head = b"{}"
    table_bytes = json.dumps(table).encode() if table is not None else b""
    os.write(write, struct.pack("<QQQ", len(head), len(table_bytes), len(blob)) + head + table_bytes + blob)


@pytest.mark.parametrize("table, blob, says", [
    ([["x", "float32", [4]]], b"\0" * 8, "more bytes than the message holds"),
    ([["x", "float32", [2]]], b"\0" * 16, "bytes its tensor table does not describe"),
    (None, b"\0" * 4, "bytes its tensor table does not describe"),
    ([["x", "object", [1]]], b"\0" * 8, "malformed tensor table entry"),
    ([["x", "float32", [-1]]], b"", "malformed tensor table entry"),
    ([["x", "float32", [True]]], b"\0" * 4, "malformed tensor table entry"),
    ([["x", "float32", [1] * 65]], b"\0" * 4, "malformed tensor table entry"),
    ([["x", "float32", [2]], ["x", "float32", [2]]], b"\0" * 72, "sent twice"),
    ({"x": 1}, b"", "malformed tensor table"),
])
def test_a_tensor_table_that_does_not_add_up_is_refused(channel, table, blob, says):
    read, write = channel
    _raw(write, table, blob)
    with pytest.raises(wire.ProtocolError, match=says):
        wire.receive(read)


def test_a_size_declared_but_never_sent_costs_no_memory(channel):
    """A child may announce 800 MB of tensors and close its end: the grader must not have set them aside."""
    import resource

    read, write = channel
    table = json.dumps([["x", "float32", [200_000_000]]]).encode()
    os.write(write, struct.pack("<QQQ", 2, len(table), 800_000_000) + b"{}" + table)
    os.close(write)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EOFError):
        wire.receive(read)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_a_tensor_table_over_the_header_limit_is_refused_before_it_is_read(channel):
    """The table is JSON parsed into a list per tensor: a child cannot pass a huge one under the header's limit."""
    read, write = channel
    table = json.dumps([["x", "bool", [0]]] * 100).encode()
    os.write(write, struct.pack("<QQQ", 2, len(table), 0) + b"{}" + table)
    with pytest.raises(wire.ProtocolError, match="exceeds the limits"):
        wire.receive(read, max_header=1000)
