"""The hidden reference implementation: the assignment, solved.

Instructor-only. It exposes exactly the public API of the `student` package.
"""

from .attention import (
    KVCache,
    LayerKVCache,
    MultiHeadSelfAttention,
    RotaryPositionalEmbedding,
    causal_mask,
    scaled_dot_product_attention,
)
from .decoding import generate, next_token_distribution, perplexity
from .gpt2 import Conv1D, GPT2Attention, GPT2Config, GPT2LM, LayerNorm, gelu
from .layers import Embedding, Linear, RMSNorm, SwiGLU, silu, softmax
from .loss import cross_entropy
from .model import TransformerBlock, TransformerConfig, TransformerLM
from .training import (
    AdamW,
    TrainingConfig,
    gradient_clipping,
    get_batch,
    get_lr_cosine_schedule,
    load_checkpoint,
    save_checkpoint,
    train_step,
)

__all__ = [
    "Linear",
    "Embedding",
    "RMSNorm",
    "silu",
    "SwiGLU",
    "softmax",
    "scaled_dot_product_attention",
    "causal_mask",
    "RotaryPositionalEmbedding",
    "LayerKVCache",
    "KVCache",
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerLM",
    "cross_entropy",
    "next_token_distribution", "generate", "perplexity",
    "get_batch",
    "gradient_clipping",
    "AdamW",
    "get_lr_cosine_schedule",
    "save_checkpoint",
    "load_checkpoint",
    "TrainingConfig",
    "train_step",
    "LayerNorm",
    "gelu",
    "Conv1D",
    "GPT2Attention",
    "GPT2Config",
    "GPT2LM",
]
