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
from .gpt2 import GPT2Cache, GPT2LM, LayerNorm, gelu_tanh, generate_gpt2, layer_norm
from .losses import cross_entropy
from .model import KVCache, TransformerBlock, TransformerLM
from .training import AdamW, get_batch, get_lr_cosine_schedule, gradient_clipping, load_checkpoint, save_checkpoint

__all__ = [
    "Embedding", "Linear", "MultiHeadSelfAttention", "RMSNorm", "RotaryPositionalEmbedding", "SwiGLU",
    "TransformerBlock", "TransformerLM", "KVCache", "scaled_dot_product_attention", "silu", "softmax",
    "cross_entropy", "next_token_distribution", "generate", "perplexity",
    "GPT2LM", "GPT2Cache", "LayerNorm", "layer_norm", "gelu_tanh", "generate_gpt2",
    "AdamW", "get_batch", "get_lr_cosine_schedule", "gradient_clipping", "load_checkpoint", "save_checkpoint",
]
