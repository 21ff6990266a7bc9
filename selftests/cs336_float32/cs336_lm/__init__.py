from .decoding import generate, next_token_distribution, perplexity
from .layers import (
    Embedding,
    Linear,
    MultiHeadSelfAttention,
    RMSNorm,
    RotaryPositionalEmbedding,
    SwiGLU,
    scaled_dot_product_attention,
    silu,
    softmax,
)
from .losses import cross_entropy
from .model import KVCache, TransformerBlock, TransformerLM
from .training import AdamW, get_batch, get_lr_cosine_schedule, gradient_clipping, load_checkpoint, save_checkpoint

__all__ = [
    "Embedding", "Linear", "MultiHeadSelfAttention", "RMSNorm", "RotaryPositionalEmbedding", "SwiGLU",
    "TransformerBlock", "TransformerLM", "KVCache", "scaled_dot_product_attention", "silu", "softmax",
    "cross_entropy", "next_token_distribution", "generate", "perplexity",
    "AdamW", "get_batch", "get_lr_cosine_schedule", "gradient_clipping", "load_checkpoint", "save_checkpoint",
]
