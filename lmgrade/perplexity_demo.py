"""Sliding-window perplexity of a tiny GPT-2 trained on the stories that ship with the project, at several strides.

    lmgrade perplexity                                   # strides 32 and 8, about 20 s on 2 CPU cores
    lmgrade perplexity --impl student                    # your GPT2LM, training parts and perplexity
    lmgrade perplexity --stride 32 --stride 16 --stride 4 --steps 500
    lmgrade perplexity --tokens my_text.txt              # any text, read as bytes
    python -m lmgrade.perplexity_demo --tokens ids.bin --context-length 128 --out runs/ppl

The model is the package's GPT2LM (the reference's, or --impl student: yours) over byte tokens (vocab 256, d_ff = 4·d_model), trained
first for --steps steps on the first nine tenths of lmgrade/train_corpus.txt with the package's
get_batch, train_step and AdamW (cosine learning-rate schedule with warm-up, as `lmgrade train`).
Its weights go to OUT/gpt2.pt (a torch.save'd state dict, transformers' GPT-2 names).

The scored tokens are, by default, the last tenth of the corpus, which training never sees: kept as
np.uint16 in OUT/valid.bin and read back with np.memmap. --tokens takes a raw np.uint16 token file
(ids below 256, no .npy header) or, with the suffix .txt, a text file read as bytes.

For each stride the package's perplexity runs the windows (a bar on stderr counts them) and the
number is printed; a table and OUT/perplexity.json end the run. A window starts at 0, stride,
2·stride, … and each token after the first is scored once, by the first window that predicts it.
When a smaller stride divides a larger one, its windows start wherever the larger one's do (and in
between), so every scored token sees at least as much context: for a trained model the perplexity
is expected to be lower or equal. The run says whether that held. It is seeded: the same options
print the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from lmgrade.train_demo import (
    CORPUS,
    VOCAB_SIZE,
    TrainDemoError,
    import_package,
    optimiser_and_schedule,
    progress_bar,
    set_threads,
    token_files,
)

BATCH_SIZE = 16
PEAK_LR = 3e-3
SLACK = 1e-9  # relative: "lower or equal" up to float rounding


class PerplexityDemoError(TrainDemoError):
    """A problem with the options or the tokens: printed as one line, no traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `lmgrade perplexity` (also those of `python -m lmgrade.perplexity_demo`)."""
    parser.add_argument("--impl", choices=["reference", "student"], default="reference",
                        help="whose GPT2LM, training parts and perplexity run (default: reference)")
    parser.add_argument("--tokens", default=None, metavar="PATH",
                        help="a raw np.uint16 token file (ids < 256), or a .txt file read as bytes "
                             "(default: the held-out last tenth of the bundled stories)")
    parser.add_argument("--stride", type=int, action="append", default=None, metavar="N",
                        help="a window stride in [1, context length]; give it several times "
                             "(default: the context length and a quarter of it)")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps before scoring (default 300: far fewer, and the model barely uses its context)")
    parser.add_argument("--out", default="perplexity_out", metavar="DIR",
                        help="where the token files, gpt2.pt and perplexity.json go (default perplexity_out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches (default 0)")
    parser.add_argument("--context-length", type=int, default=32, help="tokens per window (default 32)")
    parser.add_argument("--d-model", type=int, default=64, help="width (default 64; d_ff is 4·d_model)")
    parser.add_argument("--num-layers", type=int, default=2, help="Transformer blocks (default 2)")
    parser.add_argument("--num-heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: half the cores, at most 4)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmgrade.perplexity_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def run_command(options: argparse.Namespace) -> int:
    """Train, score and report; 0 when the run finished, 2 on bad options or tokens."""
    try:
        return report(options)
    except TrainDemoError as error:
        print(f"lmgrade perplexity: error: {error}", file=sys.stderr)
        return 2


def window_count(n: int, context_length: int, stride: int) -> int:
    """How many windows the sliding-window perplexity of n tokens runs: they start at 0, stride, …
    and the last is the first that reaches token n − 1, i.e. the first start with start + C ≥ n − 1."""
    return 1 + max(0, -(-(n - 1 - context_length) // stride))


def strides_of(o: argparse.Namespace) -> list[int]:
    """The strides asked for (default C and C/4), each once, largest first."""
    asked = o.stride or [o.context_length, max(1, o.context_length // 4)]
    for stride in asked:
        if not 1 <= stride <= o.context_length:
            raise PerplexityDemoError(f"--stride {stride} is outside [1, context length {o.context_length}]")
    return sorted(set(asked), reverse=True)


def check_options(o: argparse.Namespace) -> None:
    for name in ("context_length", "d_model", "num_layers", "num_heads"):
        if getattr(o, name) < 1:
            raise PerplexityDemoError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(o, name)}")
    if o.steps < 0:
        raise PerplexityDemoError(f"--steps must be at least 0, got {o.steps}")
    if o.d_model % o.num_heads:
        raise PerplexityDemoError(f"--d-model {o.d_model} does not split into --num-heads {o.num_heads} heads")


def read_tokens(path: Path, out: Path):
    """The tokens of --tokens, memory-mapped: a raw uint16 file as it is, a .txt file's bytes written to
    OUT/tokens.bin first. Checks what the perplexity needs: at least 2 tokens, every id below 256."""
    import numpy as np

    if not path.is_file():
        raise PerplexityDemoError(f"no such token file: {path}")
    if path.suffix.lower() == ".txt":
        out.mkdir(parents=True, exist_ok=True)
        np.frombuffer(path.read_bytes(), dtype=np.uint8).astype(np.uint16).tofile(out / "tokens.bin")
        path = out / "tokens.bin"
    else:
        with path.open("rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise PerplexityDemoError(f"{path} is a .npy file: pass the raw ids instead "
                                          "(np.asarray(ids, dtype=np.uint16).tofile(PATH))")
        if path.stat().st_size % 2:
            raise PerplexityDemoError(f"{path} has {path.stat().st_size} bytes: not a whole number of uint16 tokens")
    if path.stat().st_size < 4:  # (np.memmap cannot map an empty file)
        raise PerplexityDemoError(f"{path} holds {path.stat().st_size // 2} token(s): the perplexity needs at least 2 "
                                  "(one to condition on, one to score)")
    return np.memmap(path, dtype=np.uint16, mode="r")


def check_ids(tokens, where: str) -> None:
    import numpy as np

    too_big = np.flatnonzero(tokens >= VOCAB_SIZE)
    if too_big.size:
        first = int(too_big[0])
        raise PerplexityDemoError(f"{where}: token id {int(tokens[first])} at position {first} is not below the "
                                  f"vocabulary size {VOCAB_SIZE} (byte tokens)")


def window_counter(model, stride: int, windows: int, stream=None):
    """`model` behind a thin proxy for the perplexity: the same config and outputs; it counts the
    forward calls (one per window) and draws a bar to stderr, live on a terminal, else once at the end."""
    from torch import nn

    stream = stream if stream is not None else sys.stderr
    live = stream.isatty()
    every = max(1, windows // 100)  # about a hundred redraws, however many windows

    class WindowCounter(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.config = model.config  # the perplexity reads config.context_length
            self.calls = 0

        def forward(self, in_indices):
            self.calls += 1
            done = self.calls == windows
            if done or (live and self.calls % every == 0):
                line = f"stride {stride} [{progress_bar(min(self.calls, windows), windows)}] {self.calls}/{windows} windows"
                stream.write(("\r" + line) if live else line + "\n")
                if live and done:
                    stream.write("\r" + " " * len(line) + "\r")  # the result line takes its place
                stream.flush()
            return self.model(in_indices)

    return WindowCounter()


def report(o: argparse.Namespace) -> int:
    check_options(o)
    strides = strides_of(o)
    out = Path(o.out)
    if o.tokens is not None:  # checked before the training, so a bad file fails at once
        scored_path = Path(o.tokens)
        tokens = read_tokens(scored_path, out)
        check_ids(tokens, str(scored_path))
    ref = import_package(o.impl)
    import numpy as np
    import torch

    set_threads(o.threads)
    train_data, valid_data = token_files(CORPUS, out)
    if o.tokens is None:
        scored_path, tokens = out / "valid.bin", valid_data
    if len(train_data) <= o.context_length + 1:
        raise PerplexityDemoError(f"the corpus is too small for --context-length {o.context_length}: "
                                  f"its training part has {len(train_data)} tokens")

    config = ref.GPT2Config(vocab_size=VOCAB_SIZE, context_length=o.context_length, d_model=o.d_model,
                            num_layers=o.num_layers, num_heads=o.num_heads, d_ff=4 * o.d_model)
    torch.manual_seed(o.seed)
    model = ref.GPT2LM(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{o.impl} GPT2LM(vocab_size={VOCAB_SIZE}, context_length={o.context_length}, d_model={o.d_model}, "
          f"num_layers={o.num_layers}, num_heads={o.num_heads}, d_ff={4 * o.d_model}): {n_params / 1e6:.2f} M parameters")
    print(f"training on the first nine tenths of {CORPUS.name} ({len(train_data):,} bytes): {o.steps} steps of "
          f"{BATCH_SIZE}×{o.context_length} tokens, peak lr {PEAK_LR:g}, {torch.get_num_threads()} thread(s), seed {o.seed}")

    optimizer, schedule = optimiser_and_schedule(ref, model, PEAK_LR, o.steps)
    losses: list[float] = []
    start = time.perf_counter()
    for it in range(o.steps):
        x, y = ref.get_batch(train_data, BATCH_SIZE, o.context_length, "cpu")
        losses.append(ref.train_step(model, optimizer, x, y, it, schedule))
    if losses:
        tail = losses[-min(len(losses), 10):]
        print(f"trained {o.steps} steps in {time.perf_counter() - start:.1f} s: train loss {losses[0]:.3f} at the "
              f"first step, {sum(tail) / len(tail):.3f} over the last {len(tail)} (a uniform guess scores "
              f"{math.log(VOCAB_SIZE):.3f})")
    else:
        print("not trained (--steps 0): the weights are the initial ones")
    weights = out / "gpt2.pt"
    torch.save(model.state_dict(), weights)
    print(f"weights: {weights}")

    n = len(tokens)
    what = "the held-out last tenth of the corpus" if o.tokens is None else "--tokens"
    print(f"scoring {what}: {n:,} tokens in {scored_path} (uint16, memory-mapped)")
    ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    model.eval()
    rows = []
    for stride in strides:
        windows = window_count(n, o.context_length, stride)
        counter = window_counter(model, stride, windows)
        start = time.perf_counter()
        value = ref.perplexity(counter, ids, stride)
        print(f"stride {stride}: perplexity {value:.4f} over {counter.calls} windows ({time.perf_counter() - start:.1f} s)",
              flush=True)
        rows.append(dict(stride=stride, windows=counter.calls, scored_tokens=n - 1, perplexity=value))

    print(f"\n{'stride':>6}  {'windows':>7}  {'scored tokens':>13}  {'perplexity':>10}")
    for row in rows:
        print(f"{row['stride']:>6}  {row['windows']:>7,}  {row['scored_tokens']:>13,}  {row['perplexity']:>10.4f}")
    print(f"(a uniform guess over the {VOCAB_SIZE} bytes scores {VOCAB_SIZE})")

    by_stride = {row["stride"]: row["perplexity"] for row in rows}
    pairs = [(big, small) for big in strides for small in strides if small < big and big % small == 0]
    if pairs:
        print("A smaller stride that divides a larger one starts a window wherever the larger one does, and in "
              "between, so each scored token gets at least as much context: for a trained model the perplexity "
              "is expected to be lower or equal.")
        for big, small in pairs:
            held = by_stride[small] <= by_stride[big] * (1 + SLACK)
            print(f"stride {small} ≤ stride {big}: {by_stride[small]:.4f} vs {by_stride[big]:.4f}: " + (
                "held here" if held else "did NOT hold here (a model that barely uses its context yet does no better "
                "late in a window: train it longer, --steps)"))
    elif len(strides) > 1:
        print("No stride here divides another, so no ordering is expected between them.")

    results = out / "perplexity.json"
    results.write_text(json.dumps(dict(
        model=dict(vocab_size=VOCAB_SIZE, context_length=o.context_length, d_model=o.d_model, num_layers=o.num_layers,
                   num_heads=o.num_heads, d_ff=4 * o.d_model),
        steps=o.steps, seed=o.seed, weights=str(weights), tokens=str(scored_path), n_tokens=n, results=rows), indent=2) + "\n")
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
