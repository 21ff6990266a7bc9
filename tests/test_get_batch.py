"""get_batch: windows of the token array at uniform random starts, and the same windows shifted by one.

The dataset used here holds distinct ids (65535, 65534, …: near the top of uint16, where a cast
to int16 turns negative), so a row's first token names its start, and a row can be checked to be
a real window. Students may sample with numpy's or torch's generator (the driver seeds both): no
test assumes which, so none compares batches with the reference's.
"""

import contextlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import diagnosed, peak_memory
from .strategies import seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A get_batch failure is usually targets not shifted (targets == inputs), the last start never drawn "
    "(randint's upper bound is exclusive: len − context_length, not len − context_length − 1), uint16 ids "
    "left as uint16, or the whole (memory-mapped) array read into memory."
    "\n"
    "Ask yourself: which starts s still have a target for their last position, can your sampler return "
    "the largest of them, and do you index only the sampled windows?"
)

TOP = 65535  # the largest uint16 token id


def distinct_tokens(num_tokens: int) -> torch.Tensor:
    """Token ids TOP, TOP − 1, …: all distinct, so dataset[s] = TOP − s names the start s."""
    return TOP - torch.arange(num_tokens, dtype=torch.int64)


def sample_call(num_tokens: int, batch_size: int, context_length: int, seed: int, device: str = "cpu") -> dict:
    return dict(dataset=distinct_tokens(num_tokens), batch_size=batch_size, context_length=context_length, device=device,
                seed=seed)


def sample(impl, num_tokens: int, batch_size: int, context_length: int, seed: int, device: str = "cpu") -> dict:
    return impl.run_get_batch(**sample_call(num_tokens, batch_size, context_length, seed, device))


@contextlib.contextmanager
def diagnosed_batch(oracle, batch: dict, *size_and_seed):
    """A failure about `batch` names the catalogued get_batch bug that draws the same batch."""
    with diagnosed(oracle, "run_get_batch", sample_call(*size_and_seed), batch):
        yield


def starts_of(batch: dict) -> torch.Tensor:
    """The start of every row (the dataset holds TOP − s at position s)."""
    return TOP - batch["inputs"][:, 0].to("cpu", torch.int64)


sizes = st.sampled_from([(20, 1, 4), (50, 3, 8), (200, 8, 16), (17, 5, 16)])  # (num_tokens, batch, context)

# Many rows from a small dataset: 16 starts (0 … 15), so each is drawn ~100 times.
COVER_TOKENS, COVER_CONTEXT, COVER_ROWS = 20, 4, 1600
# The chi-square test of uniformity over those 16 starts has df = 15; at a false-alarm rate
# alpha = 1e-3 its critical value is 37.70 (the 0.999 quantile of chi²(15) = 37.697; a Monte Carlo
# of 200 000 multinomial(1600, 1/16) samples rejected 0.087% of them at 37.70).
CHI2_DF15_ALPHA_1E3 = 37.70


@given(size=sizes, seed=seeds)
def test_get_batch_returns_batch_by_context_on_the_device(impl, oracle, device, size, seed):
    num_tokens, batch_size, context_length = size
    batch = sample(impl, num_tokens, batch_size, context_length, seed, device=device.type)
    with diagnosed_batch(oracle, batch, num_tokens, batch_size, context_length, seed, device.type):
        assert batch["inputs"].shape == (batch_size, context_length), f"inputs have shape {tuple(batch['inputs'].shape)}"
        assert batch["targets"].shape == (batch_size, context_length), f"targets have shape {tuple(batch['targets'].shape)}"
        assert batch["device"] == device.type and batch["targets_device"] == device.type, (
            f"asked for device {device.type!r}; inputs were made on {batch['device']!r}, targets on {batch['targets_device']!r}"
        )


@given(size=sizes, seed=seeds)
def test_get_batch_returns_int64_ids(impl, oracle, size, seed):
    """The dataset is np.uint16; embeddings and cross-entropy index with int64 (torch.long)."""
    batch = sample(impl, *size, seed)
    with diagnosed_batch(oracle, batch, *size, seed):
        assert batch["inputs"].dtype == torch.int64 and batch["targets"].dtype == torch.int64, (
            f"inputs are {batch['inputs'].dtype} and targets {batch['targets'].dtype}; both must be torch.int64 (long)"
        )


@given(size=sizes, seed=seeds)
def test_get_batch_targets_are_inputs_shifted_by_one(impl, oracle, size, seed):
    batch = sample(impl, *size, seed)
    with diagnosed_batch(oracle, batch, *size, seed):
        inputs, targets = batch["inputs"].cpu(), batch["targets"].cpu()
        assert not torch.equal(inputs, targets), "targets equal the inputs: they must be the NEXT tokens (shift by one)"
        assert torch.equal(targets[:, :-1], inputs[:, 1:]), "targets[:, i] must be inputs[:, i + 1] (shifted by one token)"


@given(size=sizes, seed=seeds)
def test_get_batch_rows_are_windows_of_the_dataset(impl, oracle, size, seed):
    """inputs[b] = dataset[s : s + context_length], targets[b] = dataset[s + 1 : s + context_length + 1]."""
    num_tokens, batch_size, context_length = size
    dataset = distinct_tokens(num_tokens)
    batch = sample(impl, num_tokens, batch_size, context_length, seed)
    with diagnosed_batch(oracle, batch, num_tokens, batch_size, context_length, seed):
        inputs, targets = batch["inputs"].cpu().to(torch.int64), batch["targets"].cpu().to(torch.int64)
        for b, s in enumerate(starts_of(batch).tolist()):
            assert 0 <= s <= num_tokens - context_length - 1, (
                f"row {b} starts with token id {int(inputs[b, 0])}, which is not the start of any valid window "
                f"(ids are {TOP} − position; valid starts are 0 … {num_tokens - context_length - 1})"
            )
            assert torch.equal(inputs[b], dataset[s:s + context_length]), f"row {b} of inputs is not dataset[s : s + context_length]"
            assert torch.equal(targets[b], dataset[s + 1:s + context_length + 1]), (
                f"row {b} of targets is not dataset[s + 1 : s + context_length + 1]"
            )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_get_batch_draws_every_start_and_nothing_beyond(impl, oracle, seed):
    """From 20 tokens and context 4 the valid starts are 0 … 15 (start 15 reads tokens 15 … 19, the
    last one its last target). 1600 rows must draw every one of them (a uniform sampler misses
    a given start with probability (15/16)^1600 ≈ 1e-45) and none beyond."""
    batch = sample(impl, COVER_TOKENS, COVER_ROWS, COVER_CONTEXT, seed)
    with diagnosed_batch(oracle, batch, COVER_TOKENS, COVER_ROWS, COVER_CONTEXT, seed):
        seen = set(starts_of(batch).tolist())
        last = COVER_TOKENS - COVER_CONTEXT - 1
        outside = sorted(s for s in seen if not 0 <= s <= last)
        assert not outside, f"starts {outside[:5]} are outside 0 … {last}: their windows run past the data"
        missing = sorted(set(range(last + 1)) - seen)
        assert not missing, (
            f"starts {missing} were never drawn in {COVER_ROWS} rows; the valid starts are 0 … {last}, both ends "
            "included (is the upper bound of your randint exclusive?)"
        )


def test_get_batch_starts_are_uniform(impl, oracle):
    """Pearson's chi-square over the 16 starts of 1600 rows, at seed 0: a uniform sampler exceeds
    the critical value 37.70 (df = 15) with probability 1e-3."""
    batch = sample(impl, COVER_TOKENS, COVER_ROWS, COVER_CONTEXT, seed=0)
    with diagnosed_batch(oracle, batch, COVER_TOKENS, COVER_ROWS, COVER_CONTEXT, 0):
        starts = starts_of(batch)
        last = COVER_TOKENS - COVER_CONTEXT - 1
        assert bool(((starts >= 0) & (starts <= last)).all()), f"some starts are outside 0 … {last}"
        counts = torch.bincount(starts, minlength=last + 1).double()
        expected = COVER_ROWS / (last + 1)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 <= CHI2_DF15_ALPHA_1E3, (
            f"start counts {counts.long().tolist()} (expected {expected:.0f} each) give chi² = {chi2:.1f} > "
            f"{CHI2_DF15_ALPHA_1E3} (df = 15, false-alarm rate 1e-3): the starts are not uniform"
        )


def test_get_batch_differs_between_seeds(impl, oracle):
    """A batch is random: two seeds give different batches, and rows of one batch are not all the same."""
    first, second = (sample(impl, 1000, 8, 16, seed) for seed in (0, 1))
    with diagnosed_batch(oracle, first, 1000, 8, 16, 0):
        assert not torch.equal(first["inputs"].cpu(), second["inputs"].cpu()), "seeds 0 and 1 gave the same batch"
        starts = starts_of(first)
        assert len(set(starts.tolist())) > 1, f"all 8 rows start at {int(starts[0])}: the starts are not random"


def test_get_batch_reads_only_the_sampled_windows_of_a_memmap(impl, oracle):
    """The dataset is a np.memmap of 100 000 000 uint16 tokens (a 200 MB file): a call may grow the
    peak memory by at most 50 MiB. Reading the array whole (np.array, torch.tensor, .astype on it)
    costs at least 200 MB; the reference grows by about 9 MiB."""
    call = dict(num_tokens=100_000_000, batch_size=8, context_length=64, seed=0)
    grown, error = peak_memory(impl, "run_get_batch_memmap", **call)
    if error is not None:
        raise error
    limit = 50 * 2**20
    with diagnosed(oracle, "run_get_batch_memmap", call, True,
                   measure=lambda bound: peak_memory(bound, "run_get_batch_memmap", **call)[0] >= limit):
        assert grown < limit, (
            f"get_batch on a 200 MB memory-mapped file raised the peak memory by {grown / 2**20:.0f} MiB (limit 50 MiB): "
            "it read the whole file; index only the sampled windows"
        )
