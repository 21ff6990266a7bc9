"""The on-disk oracle cache: it may only ever make grading faster, never change an expected value."""

import os
import shutil

import pytest
import torch

import adapters
from lmgrade.core.oracle import PROJECT_ROOT, CachingOracle, LiveOracle, case_key, reference_fingerprint

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("test_oracle_cache")


@pytest.fixture(scope="module")
def reference():
    return adapters.select(impl="reference")


def _attention_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    return {"Q": q, "K": k, "V": v, "mask": torch.ones(3, 3, dtype=torch.bool).tril()}


def _bitwise_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) and a[name].dtype == b[name].dtype for name in a)


def test_a_case_read_back_from_the_cache_equals_the_live_reference_bit_for_bit(reference, tmp_path):
    live = LiveOracle(reference).expected("run_scaled_dot_product_attention", _attention_case(), ["Q", "K"], 3)
    first = CachingOracle(reference, tmp_path)
    first.expected("run_scaled_dot_product_attention", _attention_case(), ["Q", "K"], 3)
    second = CachingOracle(reference, tmp_path)  # a later grading: a new process, the same directory
    cached = second.expected("run_scaled_dot_product_attention", _attention_case(), ["Q", "K"], 3)
    assert (first.misses, second.hits, second.misses) == (1, 1, 0)
    assert _bitwise_equal(cached, live)


def test_a_different_case_is_a_different_entry(reference, tmp_path):
    oracle = CachingOracle(reference, tmp_path)
    a = oracle.expected("run_scaled_dot_product_attention", _attention_case(0))
    b = oracle.expected("run_scaled_dot_product_attention", _attention_case(1))
    c = oracle.expected("run_scaled_dot_product_attention", _attention_case(0), ["V"], 0)  # same inputs, a gradient asked
    assert oracle.misses == 3 and not torch.equal(a["output"], b["output"]) and "grad/V" in c
    # The same shape and the same bytes, another dtype: another case.
    assert case_key("f", {"x": torch.zeros(2)}, [], 0) != case_key("f", {"x": torch.zeros(2, dtype=torch.int32)}, [], 0)


def test_editing_the_reference_changes_the_fingerprint_so_old_answers_are_never_served(tmp_path):
    for name in ("reference", "adapters", "lmgrade"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "bugs"))
    before = reference_fingerprint(tmp_path)
    assert before == reference_fingerprint(PROJECT_ROOT)
    layers = tmp_path / "reference" / "layers.py"
    layers.write_text(layers.read_text() + "\n# an edit\n")
    assert reference_fingerprint(tmp_path) != before


def test_a_corrupt_entry_is_recomputed_not_served(reference, tmp_path):
    oracle = CachingOracle(reference, tmp_path)
    expected = oracle.expected("run_scaled_dot_product_attention", _attention_case())
    (entry,) = oracle.dir.iterdir()
    entry.write_bytes(b"not a safetensors file")
    again = CachingOracle(reference, tmp_path)
    assert _bitwise_equal(again.expected("run_scaled_dot_product_attention", _attention_case()), expected)
    assert again.misses == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_cache_that_cannot_be_written_still_answers(reference, tmp_path):
    tmp_path.chmod(0o500)
    try:
        oracle = CachingOracle(reference, tmp_path)
        assert "output" in oracle.expected("run_scaled_dot_product_attention", _attention_case())
    finally:
        tmp_path.chmod(0o700)


def test_a_cache_path_that_is_a_file_still_answers(reference, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    oracle = CachingOracle(reference, blocker)
    assert "output" in oracle.expected("run_scaled_dot_product_attention", _attention_case())


def test_a_poisoned_entry_is_rejected_and_recomputed(reference, tmp_path):
    """Cache poisoning: an entry rewritten with other values (even well-formed), or another case's entry moved
    under this key, fails its HMAC and is recomputed; the right values are served."""
    from safetensors.torch import load_file, save_file

    case = ("run_scaled_dot_product_attention", _attention_case(), ["Q"], 1)
    live = LiveOracle(reference).expected(*case)
    CachingOracle(reference, tmp_path).expected(*case)
    (entry,) = (tmp_path / reference_fingerprint()).glob("*.safetensors")
    poisoned = {name: torch.zeros_like(t) for name, t in load_file(str(entry)).items()}
    save_file(poisoned, str(entry), metadata={"key": entry.stem, "mac": "0" * 64})
    oracle = CachingOracle(reference, tmp_path)
    assert _bitwise_equal(oracle.expected(*case), live)
    assert (oracle.hits, oracle.rejected) == (0, 1)
    other = CachingOracle(reference, tmp_path)  # a genuine entry of another case, moved under this key
    other.expected("run_scaled_dot_product_attention", _attention_case(5), ["Q"], 1)
    moved = [p for p in (tmp_path / reference_fingerprint()).glob("*.safetensors") if p != entry][0]
    shutil.copy(moved, entry)
    again = CachingOracle(reference, tmp_path)
    assert _bitwise_equal(again.expected(*case), live) and again.rejected == 1


def test_the_cache_root_is_owner_only(reference, tmp_path):
    CachingOracle(reference, tmp_path / "cache").expected("run_scaled_dot_product_attention", _attention_case())
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0
    assert (tmp_path / "cache" / "secret.key").stat().st_mode & 0o077 == 0
