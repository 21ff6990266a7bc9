"""`lmgrade train`: a tiny run of the reference trains (the loss drops), plots and samples; the stubs say
what is missing in one line; the corpus ships with the package."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from lmgrade import cli, train_demo

TINY = ["--steps", "30", "--batch-size", "8", "--context-length", "32", "--d-model", "32", "--num-layers", "1",
        "--num-heads", "2", "--eval-every", "10", "--eval-batches", "2", "--max-new-tokens", "12", "--threads", "1",
        "--prompt", "One day"]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_tiny(tmp_path, capsys, *extra: str) -> tuple[int, str, str]:
    code = train_demo.main([*TINY, "--out", str(tmp_path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_tiny_reference_run_trains_plots_and_samples(tmp_path, capsys, restore_threads):
    code, out, err = run_tiny(tmp_path, capsys)
    assert code == 0, err
    png = tmp_path / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"loss curve: {png}" in out
    first, last = map(float, re.search(r"train loss ([\d.]+) at the first step, ([\d.]+) over the last", out).groups())
    val_first, val_last = map(float, re.search(r"validation loss ([\d.]+) → ([\d.]+)", out).groups())
    assert last < first - 0.5 and val_last < val_first - 0.5, out
    sample = out.split("new bytes):\n", 1)[1]
    assert sample.startswith("One day") and len(sample.rstrip("\n")) > len("One day"), out
    # The tokens went through uint16 files, memory-mapped back.
    assert (tmp_path / "train.bin").stat().st_size == 2 * len(train_demo.token_files(train_demo.CORPUS, tmp_path)[0])
    # Seeded: the same options print the same numbers.
    again = run_tiny(tmp_path, capsys)[1]
    strip = lambda text: re.sub(r"[\d.]+ it/s|in [\d.]+ s", "", text)  # noqa: E731 (timings differ)
    assert strip(again) == strip(out)


def test_the_student_stubs_end_with_one_line_naming_the_missing_piece(tmp_path, capsys, restore_threads):
    code = cli.main(["train", "--impl", "student", *TINY, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not implemented yet:" in lines[0] and "Traceback" not in err, err
    assert re.search(r"not implemented yet: \w+", lines[0])


def test_without_matplotlib_the_run_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert not train_demo.plot_losses(tmp_path / "loss.png", [3.0, 2.0], [(0, 3.0)], "t")
    assert "pip install matplotlib" in capsys.readouterr().out
    assert not (tmp_path / "loss.png").exists()


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert train_demo.main(["--d-model", "30", "--num-heads", "4", "--out", str(tmp_path)]) == 2
    assert "must split into" in capsys.readouterr().err


def test_the_corpus_ships_as_package_data():
    import tomllib

    assert train_demo.CORPUS.is_file() and 50_000 < train_demo.CORPUS.stat().st_size < 200_000
    pyproject = tomllib.loads((train_demo.CORPUS.parents[1] / "pyproject.toml").read_text())
    assert train_demo.CORPUS.name in pyproject["tool"]["setuptools"]["package-data"]["lmgrade"]
