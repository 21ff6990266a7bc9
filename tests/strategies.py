"""Hypothesis strategies and the tensors they describe, shared by every test file.

Strategies draw small *descriptions* (shapes from small sets, a seed, a scale, flags); the
tensors are built from them with a seeded `torch.Generator`. So a falsifying example prints
as a few numbers a student can paste, the global torch RNG is never touched (Hypothesis would
call the test flaky), and shapes come from small sets so einx traces each shape once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

from lmgrade.core.layouts import LAYOUTS

seeds = st.integers(min_value=0, max_value=2**31 - 1)
# Memory layouts of the inputs (lmgrade.core.layouts): sliced, transposed, permuted leading dims, expanded.
layouts = st.sampled_from(LAYOUTS)
leading_dims = st.sampled_from([(), (1,), (3,), (2, 3)])
# Magnitudes of drawn values; 0.01 makes RMSNorm's eps matter, 10 stresses softmax/exp.
scales = st.sampled_from([0.01, 1.0, 10.0])
batch_sizes = st.sampled_from([1, 2, 3])
model_dims = st.sampled_from([8, 16, 24])


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    context_length: int
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    rope_theta: float

    def args(self) -> dict:
        return dict(vars(self))

    @property
    def d_head(self) -> int:
        return self.d_model // self.num_heads


# Heads of 2, 3 and 4 against batches of 1-3: some draws have batch == heads, most do not.
LM_CONFIGS = [
    LMConfig(vocab_size=37, context_length=16, d_model=16, num_layers=1, num_heads=2, d_ff=24, rope_theta=10000.0),
    LMConfig(vocab_size=64, context_length=12, d_model=24, num_layers=2, num_heads=3, d_ff=40, rope_theta=500.0),
    LMConfig(vocab_size=29, context_length=16, d_model=32, num_layers=2, num_heads=4, d_ff=48, rope_theta=10000.0),
]
lm_configs = st.sampled_from(LM_CONFIGS)


@st.composite
def lm_cases(draw, min_seq: int = 1, batches=batch_sizes):
    """(config, batch, seq, seed) with seq from {1, a middle length, context_length}."""
    config = draw(lm_configs)
    seq = draw(st.sampled_from(sorted({min_seq, max(min_seq, config.context_length // 2 + 1), config.context_length})))
    return config, draw(batches), seq, draw(seeds)


# Chunked runs: every chunk size is a new input shape for the model (einx traces each once), so
# the batch is fixed at 2, enough to show rows mixed up in the cache.
cached_lm_cases = lm_cases(min_seq=2, batches=st.just(2))


@st.composite
def chunk_schedules(draw, seq: int):
    """Positive chunk sizes adding up to seq; often a prefill followed by several multi-token chunks."""
    sizes, left = [], seq
    while left:
        size = draw(st.integers(min_value=1, max_value=left))
        sizes.append(size)
        left -= size
    return sizes


# --- tensors --------------------------------------------------------------------------------


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, seed: int, scale: float = 1.0, dtype=torch.float64) -> Tensor:
    """Normal values on the CPU in float64 (the ground truth); cast and move them per test."""
    return (torch.randn(tuple(shape), generator=generator(seed), dtype=torch.float64) * scale).to(dtype)


def randint(high: int, shape, seed: int) -> Tensor:
    return torch.randint(0, high, tuple(shape), generator=generator(seed))


def lm_weights(config: LMConfig, seed: int, prefix: str = "") -> dict[str, Tensor]:
    """Float64 weights under the SPEC state-dict names, scaled so activations stay O(1)."""
    d, f = config.d_model, config.d_ff
    shapes = {"token_embeddings.weight": ((config.vocab_size, d), 1.0)}
    for i in range(config.num_layers):
        shapes.update(block_weight_shapes(d, f, prefix=f"layers.{i}."))
    shapes["ln_final.weight"] = ((d,), None)
    shapes["lm_head.weight"] = ((config.vocab_size, d), d**-0.5)
    return _materialise(shapes, seed, prefix)


def block_weight_shapes(d_model: int, d_ff: int, prefix: str = "") -> dict[str, tuple]:
    shapes = {}
    for name in ("q_proj", "k_proj", "v_proj", "output_proj"):
        shapes[f"{prefix}attn.{name}.weight"] = ((d_model, d_model), d_model**-0.5)
    shapes[f"{prefix}ln1.weight"] = ((d_model,), None)
    shapes[f"{prefix}ffn.w1.weight"] = ((d_ff, d_model), d_model**-0.5)
    shapes[f"{prefix}ffn.w2.weight"] = ((d_model, d_ff), d_ff**-0.5)
    shapes[f"{prefix}ffn.w3.weight"] = ((d_ff, d_model), d_model**-0.5)
    shapes[f"{prefix}ln2.weight"] = ((d_model,), None)
    return shapes


def block_weights(d_model: int, d_ff: int, seed: int) -> dict[str, Tensor]:
    return _materialise(block_weight_shapes(d_model, d_ff), seed)


def _materialise(shapes: dict[str, tuple], seed: int, prefix: str = "") -> dict[str, Tensor]:
    weights = {}
    for offset, (name, (shape, scale)) in enumerate(shapes.items()):
        if scale is None:  # norm gains: near 1, but not 1, so a gain applied wrongly shows
            weights[prefix + name] = 1.0 + 0.2 * randn(shape, seed + offset)
        else:
            weights[prefix + name] = randn(shape, seed + offset, scale)
    return weights


# --- the GPT-2 variant --------------------------------------------------------------------------


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    context_length: int
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int

    def args(self) -> dict:
        return dict(vars(self))


# d_ff = 4 · d_model as in GPT-2; heads of 2 and 4; contexts of 12 and 16 (the wpe table's rows).
GPT2_CONFIGS = [
    GPT2Config(vocab_size=37, context_length=16, d_model=16, num_layers=1, num_heads=2, d_ff=64),
    GPT2Config(vocab_size=29, context_length=12, d_model=24, num_layers=2, num_heads=4, d_ff=96),
]


@st.composite
def gpt2_cases(draw, min_seq: int = 1, batches=batch_sizes):
    """(config, batch, seq, seed) with seq from {min_seq, a middle length, context_length}."""
    config = draw(st.sampled_from(GPT2_CONFIGS))
    seq = draw(st.sampled_from(sorted({min_seq, max(min_seq, config.context_length // 2 + 1), config.context_length})))
    return config, draw(batches), seq, draw(seeds)


def gpt2_weights(config: GPT2Config, seed: int) -> dict[str, Tensor]:
    """Float64 weights under transformers' GPT2LMHeadModel names (the tied lm_head.weight is
    transformer.wte.weight, listed once); biases and LayerNorm shifts drawn non-zero so that dropping
    one shows."""
    d, f = config.d_model, config.d_ff
    shapes = {"transformer.wte.weight": ((config.vocab_size, d), 0.5),
              "transformer.wpe.weight": ((config.context_length, d), 0.5)}
    for i in range(config.num_layers):
        p = f"transformer.h.{i}."
        shapes.update({
            p + "ln_1.weight": ((d,), None), p + "ln_1.bias": ((d,), 0.2),
            p + "attn.c_attn.weight": ((d, 3 * d), d**-0.5), p + "attn.c_attn.bias": ((3 * d,), 0.2),
            p + "attn.c_proj.weight": ((d, d), d**-0.5), p + "attn.c_proj.bias": ((d,), 0.2),
            p + "ln_2.weight": ((d,), None), p + "ln_2.bias": ((d,), 0.2),
            p + "mlp.c_fc.weight": ((d, f), d**-0.5), p + "mlp.c_fc.bias": ((f,), 0.2),
            p + "mlp.c_proj.weight": ((f, d), f**-0.5), p + "mlp.c_proj.bias": ((d,), 0.2),
        })
    shapes["transformer.ln_f.weight"] = ((d,), None)
    shapes["transformer.ln_f.bias"] = ((d,), 0.2)
    return _materialise(shapes, seed)
