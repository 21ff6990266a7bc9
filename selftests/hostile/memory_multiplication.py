"""Each forked process stays under the per-process memory limit; together they use several times it
(`dim` MiB each, 8 processes). A sound grader stops the whole tree: the call fails, softmax 0."""
import os
import time


def run_softmax(in_features, dim):
    for _ in range(8):
        if os.fork() == 0:
            block = bytearray(int(dim) << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(120)
            os._exit(0)
    time.sleep(60)
    return in_features.clone()
