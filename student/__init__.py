"""Your Transformer language model, built from scratch.

Every stub below raises NotImplementedError; replace the body with your implementation.
Suggested order (each step uses the ones before it):

    layers.py     Linear, Embedding, RMSNorm, silu, SwiGLU, softmax
    attention.py  scaled_dot_product_attention, causal_mask, RotaryPositionalEmbedding,
                  LayerKVCache, KVCache, MultiHeadSelfAttention
    model.py      TransformerBlock, TransformerLM        (TransformerConfig is given)
    loss.py       cross_entropy
    decoding.py   next_token_distribution, generate, perplexity
    training.py   get_batch, gradient_clipping, AdamW, get_lr_cosine_schedule,
                  save_checkpoint, load_checkpoint, train_step   (TrainingConfig is given)
    gpt2.py       the GPT-2 variant: LayerNorm, gelu, Conv1D, GPT2Attention, GPT2LM (GPT2Config is given)

Run `pytest` to grade: unfinished parts are reported as "not implemented" and score 0;
the rest is compared against the reference. Keep the names, constructor arguments and
parameter attribute names exactly as documented: the grader builds your modules and loads
its weights into them by name.
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
    "next_token_distribution",
    "generate",
    "perplexity",
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
