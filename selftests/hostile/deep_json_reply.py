"""Writes its own reply on the grader's channel (the descriptor is in its command line): a 300 MB JSON header of
ten million small lists. Parsed, it would take the grading process gigabytes (a list per 30 bytes of text);
a sound grader refuses it by its size before reading it (and a deeply nested one by its depth)."""
import os
import struct
import sys


def run_softmax(in_features, dim):
    fd = int(sys.argv[sys.argv.index("--reply-fd") + 1])
    body = b"[" + b"[[0],[0],[0],[0]]," * 15_000_000 + b"0]"
    os.write(fd, struct.pack("<QQQ", len(body), 0, 0))
    view = memoryview(body)
    while view:
        view = view[os.write(fd, view):]
    os._exit(0)
