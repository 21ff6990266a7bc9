"""Train a tiny Transformer LM on the stories that ship with the project, plot its loss, sample from it.

    lmgrade train                                  # the reference package, about a minute on 2 CPU cores
    lmgrade train --impl student --steps 300       # your student/ package
    python -m lmgrade.train_demo --out runs/tiny --d-model 128 --num-layers 4 --context-length 128

The corpus (lmgrade/train_corpus.txt, original text generated from templates) is read as bytes:
token ids 0…255, kept as np.uint16 in OUT/train.bin and OUT/valid.bin (the last tenth) and read
back with np.memmap, as a real run reads a token file larger than memory. Every step is the
package's train_step (cosine learning-rate schedule with warm-up, gradient clipping, AdamW); now
and then the mean loss of a fixed set of held-out batches is printed. The loss curve goes to
OUT/loss.png (matplotlib; without it the run says so and carries on), then the package's generate
continues a prompt. The run is seeded: the same options print the same numbers.

A part of the package that is still a stub ends the run with one line naming it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

CORPUS = Path(__file__).resolve().parent / "train_corpus.txt"
VOCAB_SIZE = 256  # byte-level tokens


class TrainDemoError(Exception):
    """A problem with the options, the corpus or the package: printed as one line, no traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `lmgrade train` (also those of `python -m lmgrade.train_demo`)."""
    parser.add_argument("--impl", choices=["reference", "student"], default="reference",
                        help="which package trains (default: reference)")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps (default 200, about a minute on 2 cores)")
    parser.add_argument("--out", default="train_out", metavar="DIR", help="where the token files and loss.png go (default train_out)")
    parser.add_argument("--corpus", default=str(CORPUS), metavar="PATH", help="a text file to train on (default: the bundled stories)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the batches and the sampling (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    parser.add_argument("--context-length", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--d-model", type=int, default=128, help="width (default 128)")
    parser.add_argument("--num-layers", type=int, default=2, help="Transformer blocks (default 2)")
    parser.add_argument("--num-heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--d-ff", type=int, default=None, help="SwiGLU hidden width (default 8/3·d_model, a multiple of 64)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3; the minimum is a tenth)")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between validation losses (default: steps/5)")
    parser.add_argument("--eval-batches", type=int, default=8, help="held-out batches per validation loss (default 8)")
    parser.add_argument("--prompt", default="One day, Mia went to", help="text the trained model continues")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="bytes to generate (at most what fits in the context)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8; 0 is greedy)")
    parser.add_argument("--top-k", type=int, default=None, help="keep only the k most probable bytes when sampling")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: half the cores, at most 4)")


def import_package(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if name == "reference":
            raise TrainDemoError("the reference implementation is not part of the student handout: use --impl student") from None
        raise TrainDemoError(f"could not import the {name} package: {error}") from None


def token_files(corpus: Path, out: Path):
    """The corpus as uint16 byte tokens in out/train.bin and out/valid.bin, memory-mapped back."""
    import numpy as np

    if not corpus.is_file():
        raise TrainDemoError(f"no such corpus file: {corpus}")
    tokens = np.frombuffer(corpus.read_bytes(), dtype=np.uint8).astype(np.uint16)
    split = len(tokens) * 9 // 10
    out.mkdir(parents=True, exist_ok=True)
    arrays = []
    for name, part in (("train.bin", tokens[:split]), ("valid.bin", tokens[split:])):
        part.tofile(out / name)
        arrays.append(np.memmap(out / name, dtype=np.uint16, mode="r"))
    return arrays


def progress_bar(done: int, total: int, width: int = 24) -> str:
    """The inside of a text progress bar: `width` characters, "=" for the part done, ">" at its tip."""
    filled = width * done // total
    return "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)


def progress_line(step: int, steps: int, loss: float, lr: float, rate: float) -> str:
    bar = progress_bar(step, steps)
    return f"step {step:>{len(str(steps))}}/{steps} [{bar}] loss {loss:.3f}  lr {lr:.2e}  {rate:.1f} it/s"


def set_threads(threads: int | None) -> None:
    """torch CPU threads: `threads`, or half the cores, at most 4. On a small shared machine, more
    threads than free cores makes every step wait."""
    import torch

    torch.set_num_threads(threads or max(1, min(4, (os.cpu_count() or 2) // 2)))


def optimiser_and_schedule(pkg: ModuleType, model, lr: float, steps: int):
    """The package's AdamW for `model` and the TrainingConfig of a run of `steps` steps: warm-up over
    the first twentieth, cosine down to a tenth of the peak `lr`, gradients clipped to norm 1."""
    optimizer = pkg.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    schedule = pkg.TrainingConfig(max_learning_rate=lr, min_learning_rate=lr / 10,
                                  warmup_iters=max(1, steps // 20), cosine_cycle_iters=steps, max_l2_norm=1.0)
    return optimizer, schedule


def plot_losses(path: Path, train: list[float], val: list[tuple[int, float]], title: str) -> bool:
    """Write the loss curve; False (with a one-line hint) where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no loss plot: matplotlib is not installed (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    steps = range(1, len(train) + 1)
    ax.plot(steps, train, color="tab:blue", alpha=0.35, linewidth=0.8, label="train (per step)")
    window = max(1, len(train) // 25)
    smooth = [sum(train[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(train))]
    ax.plot(steps, smooth, color="tab:blue", linewidth=1.8, label=f"train (mean of {window})")
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", color="tab:orange", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per byte)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmgrade.train_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def run_command(options: argparse.Namespace) -> int:
    """Train and report; 0 when the run finished, 1 when a part is not implemented, 2 on bad options."""
    try:
        return train(options)
    except NotImplementedError as error:
        what = str(error).split("\n")[0] or "a function the training needs"
        print(f"lmgrade train --impl {options.impl}: not implemented yet: {what} "
              f"(implement it in {options.impl}/, then run pytest)", file=sys.stderr)
        return 1
    except TrainDemoError as error:
        print(f"lmgrade train: error: {error}", file=sys.stderr)
        return 2


def check_options(o: argparse.Namespace) -> None:
    for name in ("steps", "batch_size", "context_length", "d_model", "num_layers", "num_heads", "eval_batches"):
        if getattr(o, name) < 1:
            raise TrainDemoError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(o, name)}")
    if o.d_model % o.num_heads or (o.d_model // o.num_heads) % 2:
        raise TrainDemoError(f"--d-model {o.d_model} must split into --num-heads {o.num_heads} heads of even width (RoPE)")


def train(o: argparse.Namespace) -> int:
    check_options(o)
    pkg = import_package(o.impl)
    import numpy as np
    import torch

    set_threads(o.threads)
    out = Path(o.out)
    train_data, valid_data = token_files(Path(o.corpus), out)
    if len(valid_data) <= o.context_length + 1:
        raise TrainDemoError(f"the corpus is too small for --context-length {o.context_length}: "
                             f"its held-out tenth has {len(valid_data)} tokens")
    d_ff = o.d_ff or max(64, round(o.d_model * 8 / 3 / 64) * 64)
    config = pkg.TransformerConfig(vocab_size=VOCAB_SIZE, context_length=o.context_length, d_model=o.d_model,
                                   num_layers=o.num_layers, num_heads=o.num_heads, d_ff=d_ff, rope_theta=10000.0)

    torch.manual_seed(o.seed)
    model = pkg.TransformerLM(config)
    optimizer, schedule = optimiser_and_schedule(pkg, model, o.lr, o.steps)
    # A fixed held-out set, drawn from its own seed, so every validation loss scores the same batches.
    torch.manual_seed(o.seed + 1)
    val_batches = [pkg.get_batch(valid_data, o.batch_size, o.context_length, "cpu") for _ in range(o.eval_batches)]
    torch.manual_seed(o.seed)

    def validation_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [float(pkg.cross_entropy(model(x), y)) for x, y in val_batches]
        model.train()
        return sum(losses) / len(losses)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"{o.impl} TransformerLM(vocab_size=256, context_length={o.context_length}, d_model={o.d_model}, "
          f"num_layers={o.num_layers}, num_heads={o.num_heads}, d_ff={d_ff}): {n_params / 1e6:.2f} M parameters")
    print(f"corpus {o.corpus}: {len(train_data):,} training bytes, {len(valid_data):,} held out; "
          f"{o.steps} steps of {o.batch_size}×{o.context_length} tokens, peak lr {o.lr:g}, "
          f"{torch.get_num_threads()} thread(s), seed {o.seed}")
    eval_every = o.eval_every or max(1, o.steps // 5)
    val = [(0, validation_loss())]
    print(f"step {0:>{len(str(o.steps))}}: validation loss {val[0][1]:.3f} (a uniform guess scores {np.log(VOCAB_SIZE):.3f})")

    live = sys.stdout.isatty()
    losses: list[float] = []
    start = time.perf_counter()
    for it in range(o.steps):
        x, y = pkg.get_batch(train_data, o.batch_size, o.context_length, "cpu")
        losses.append(pkg.train_step(model, optimizer, x, y, it, schedule))
        step = it + 1
        rate = step / max(time.perf_counter() - start, 1e-9)
        if live:
            lr = optimizer.param_groups[0]["lr"]
            print("\r" + progress_line(step, o.steps, losses[-1], lr, rate), end="", flush=True)
        if step % eval_every == 0 or step == o.steps:
            val.append((step, validation_loss()))
            recent = losses[-min(len(losses), 10):]
            line = (f"step {step:>{len(str(o.steps))}}: train loss {sum(recent) / len(recent):.3f} (mean of the last "
                    f"{len(recent)}), validation loss {val[-1][1]:.3f}, {rate:.1f} it/s")
            print(("\r" + line + " " * 20) if live else line, flush=True)
    seconds = time.perf_counter() - start

    tail = losses[-min(len(losses), 10):]
    print(f"\ntrained {o.steps} steps in {seconds:.1f} s: train loss {losses[0]:.3f} at the first step, "
          f"{sum(tail) / len(tail):.3f} over the last {len(tail)}; validation loss {val[0][1]:.3f} → {val[-1][1]:.3f}")
    png = out / "loss.png"
    if plot_losses(png, losses, val, f"{o.impl} TransformerLM, d_model={o.d_model}, {o.num_layers} layers, "
                   f"{o.batch_size}×{o.context_length} tokens per step"):
        print(f"loss curve: {png}")

    prompt_ids = list(o.prompt.encode("utf-8"))
    if not prompt_ids:
        raise TrainDemoError("--prompt needs at least one character")
    if len(prompt_ids) >= o.context_length:
        raise TrainDemoError(f"--prompt is {len(prompt_ids)} bytes: it leaves no room in the context of {o.context_length}")
    new_tokens = max(0, min(o.max_new_tokens, o.context_length - len(prompt_ids)))
    model.eval()
    tokens = pkg.generate(model, torch.tensor([prompt_ids]), new_tokens, temperature=o.temperature, top_k=o.top_k, seed=o.seed)
    text = bytes(tokens[0].tolist()).decode("utf-8", errors="replace")
    print(f"\nsample (temperature {o.temperature}, top_k {o.top_k}, seed {o.seed}, {new_tokens} new bytes):\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
