"""`lmgrade perplexity`: a tiny GPT-2 trained on the bundled stories beats a uniform guess at every stride, a
smaller stride (dividing the context) scores no worse, the number is the reference's perplexity itself, and bad
input ends with one line."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import types

import numpy as np
import pytest
import torch

from lmgrade import cli, perplexity_demo
from lmgrade.train_demo import VOCAB_SIZE

C = 32
# Small, but trained long enough to use its context: before about 200 steps this model is still close to a
# bigram model, no better late in a window than early, and the stride ordering is a coin toss.
SMALL = ["--steps", "250", "--context-length", str(C), "--d-model", "64", "--num-layers", "2", "--num-heads", "4",
         "--threads", "1"]
TINY = ["--steps", "3", "--context-length", "16", "--d-model", "16", "--num-layers", "1", "--num-heads", "2",
        "--threads", "1", "--stride", "16", "--stride", "4"]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["perplexity", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One run of the command with the default tokens and strides (C and C/4), shared by the checks below."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("perplexity")
    code, stdout, stderr = run(*SMALL, "--out", str(out))
    assert code == 0, stderr
    yield out, stdout, stderr
    torch.set_num_threads(threads)


def printed(stdout: str) -> dict[int, tuple[int, int, float]]:
    """The table: stride -> (windows, scored tokens, perplexity)."""
    rows = re.findall(r"^\s*(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$", stdout, flags=re.M)
    return {int(s): (int(w.replace(",", "")), int(t.replace(",", "")), float(p)) for s, w, t, p in rows}


def windows_by_hand(n: int, context_length: int, stride: int) -> int:
    count = 0
    for start in range(0, n - 1, stride):
        count += 1
        if start + context_length >= n - 1:
            break
    return count


def test_every_stride_beats_a_uniform_guess(small_run):
    out, stdout, _ = small_run
    table = printed(stdout)
    assert sorted(table) == [C // 4, C], stdout
    for stride, (_, _, value) in table.items():
        assert re.search(rf"^stride {stride}: perplexity {value:.4f}", stdout, flags=re.M), stdout
    results = json.loads((out / "perplexity.json").read_text())["results"]
    for row in results:
        assert math.isfinite(row["perplexity"]) and 1 < row["perplexity"] < VOCAB_SIZE, row
        assert table[row["stride"]][2] == pytest.approx(row["perplexity"], abs=5e-5)


def test_a_smaller_stride_scores_no_worse_on_the_trained_model(small_run):
    out, stdout, _ = small_run
    value = {row["stride"]: row["perplexity"] for row in json.loads((out / "perplexity.json").read_text())["results"]}
    assert value[C // 4] <= value[C] * (1 + 1e-9), value
    assert f"stride {C // 4} ≤ stride {C}: " in stdout and "held here" in stdout, stdout


def test_stride_equal_to_the_context_is_the_reference_perplexity_of_the_saved_model(small_run):
    import reference

    out, _, _ = small_run
    saved = json.loads((out / "perplexity.json").read_text())
    model = reference.GPT2LM(reference.GPT2Config(**saved["model"]))
    model.load_state_dict(torch.load(out / "gpt2.pt", weights_only=True))
    model.eval()
    tokens = np.memmap(out / "valid.bin", dtype=np.uint16, mode="r")
    assert saved["tokens"] == str(out / "valid.bin") and saved["n_tokens"] == len(tokens)
    # The held-out tenth of the corpus, which training never read.
    corpus = perplexity_demo.CORPUS.read_bytes()
    assert bytes(tokens.astype(np.uint8)) == corpus[len(corpus) * 9 // 10:]
    direct = reference.perplexity(model, torch.from_numpy(tokens.astype(np.int64)), C)
    by_stride = {row["stride"]: row["perplexity"] for row in saved["results"]}
    assert by_stride[C] == pytest.approx(direct, rel=1e-12, abs=0)


def test_the_bar_counts_every_window(small_run):
    out, stdout, stderr = small_run
    n = len(np.memmap(out / "valid.bin", dtype=np.uint16, mode="r"))
    for stride, (windows, scored, _) in printed(stdout).items():
        assert windows == windows_by_hand(n, C, stride) == perplexity_demo.window_count(n, C, stride)
        assert scored == n - 1
        assert f"stride {stride} [{'=' * 24}] {windows}/{windows} windows" in stderr, stderr


def test_the_live_bar_redraws_one_line_and_clears_it():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Model(torch.nn.Module):
        config = types.SimpleNamespace(context_length=4)

        def forward(self, x):
            return torch.zeros(*x.shape, 3)

    screen = Terminal()
    counter = perplexity_demo.window_counter(Model(), 2, 3, screen)
    for _ in range(3):
        counter(torch.zeros(1, 4, dtype=torch.long))
    assert counter.calls == 3 and "\n" not in screen.getvalue()
    assert screen.getvalue().count("\r") == 3 + 2 and screen.getvalue().endswith("\r") and "3/3 windows" in screen.getvalue()


def test_the_same_options_print_the_same_numbers(tmp_path):
    text = tmp_path / "story.txt"
    text.write_bytes(perplexity_demo.CORPUS.read_bytes()[-600:])
    runs = [run(*TINY, "--tokens", str(text), "--out", str(tmp_path / "out")) for _ in range(2)]
    assert [code for code, _, _ in runs] == [0, 0], runs[0][2]
    strip = lambda stdout: re.sub(r"in [\d.]+ s|\([\d.]+ s\)", "", stdout)  # noqa: E731 (timings differ)
    assert strip(runs[0][1]) == strip(runs[1][1])
    assert printed(runs[0][1])[16][1] == 599  # a .txt file is its bytes: 600 tokens, 599 scored


@pytest.mark.parametrize("case, problem", [
    ("missing", "no such token file"),
    ("stride 0", "--stride 0 is outside [1, context length 16]"),
    ("stride 17", "--stride 17 is outside [1, context length 16]"),
    ("one token", "the perplexity needs at least 2"),
    ("id 256", "token id 256 at position 2 is not below the vocabulary size 256"),
    ("odd size", "not a whole number of uint16 tokens"),
    (".npy", "is a .npy file"),
])
def test_bad_input_is_one_line_naming_the_problem(tmp_path, case, problem):
    tokens = tmp_path / "tokens.bin"
    np.array([1, 2, 3, 4], dtype=np.uint16).tofile(tokens)
    extra = ["--stride", "16"]
    if case == "missing":
        tokens = tmp_path / "nowhere.bin"
    elif case.startswith("stride"):
        extra = ["--stride", case.split()[1]]
    elif case == "one token":
        np.array([7], dtype=np.uint16).tofile(tokens)
    elif case == "id 256":
        np.array([1, 2, 256, 4], dtype=np.uint16).tofile(tokens)
    elif case == "odd size":
        tokens.write_bytes(b"abc")
    elif case == ".npy":
        tokens = tmp_path / "tokens.npy"
        np.save(tokens, np.arange(4, dtype=np.uint16))
    code, stdout, stderr = run(*TINY[:10], *extra, "--tokens", str(tokens), "--out", str(tmp_path / "out"))
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and "Traceback" not in stderr, stderr
    assert lines[0].startswith("lmgrade perplexity: error: ")
    assert not (tmp_path / "out" / "gpt2.pt").exists()  # found before any training
