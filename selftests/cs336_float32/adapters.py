"""CS336-style adapters: build a module, load the given weights into it, run it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

import cs336_lm  # noqa: E402


def run_linear(d_in: int, d_out: int, weights: Tensor, in_features: Tensor) -> Tensor:
    linear = cs336_lm.Linear(d_in, d_out).to(weights.device)
    linear.load_state_dict({"weight": weights})
    return linear(in_features)


def run_embedding(vocab_size: int, d_model: int, weights: Tensor, token_ids: Tensor) -> Tensor:
    embedding = cs336_lm.Embedding(vocab_size, d_model).to(weights.device)
    embedding.load_state_dict({"weight": weights})
    return embedding(token_ids)


def run_rmsnorm(d_model: int, eps: float, weights: Tensor, in_features: Tensor) -> Tensor:
    norm = cs336_lm.RMSNorm(d_model, eps=eps).to(weights.device)
    norm.load_state_dict({"weight": weights})
    return norm(in_features)


def run_silu(in_features: Tensor) -> Tensor:
    return cs336_lm.silu(in_features)


def run_swiglu(d_model: int, d_ff: int, w1_weight: Tensor, w2_weight: Tensor, w3_weight: Tensor,
               in_features: Tensor) -> Tensor:
    ffn = cs336_lm.SwiGLU(d_model, d_ff).to(w1_weight.device)
    ffn.load_state_dict({"w1.weight": w1_weight, "w2.weight": w2_weight, "w3.weight": w3_weight})
    return ffn(in_features)


def run_softmax(in_features: Tensor, dim: int) -> Tensor:
    return cs336_lm.softmax(in_features, dim=dim)


def run_scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None) -> Tensor:
    return cs336_lm.scaled_dot_product_attention(Q, K, V, mask)


def run_rope(d_k: int, theta: float, max_seq_len: int, in_query_or_key: Tensor, token_positions: Tensor) -> Tensor:
    rope = cs336_lm.RotaryPositionalEmbedding(theta, d_k, max_seq_len).to(in_query_or_key.device)
    return rope(in_query_or_key, token_positions)


def _attention_state(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight) -> dict[str, Tensor]:
    return {"q_proj.weight": q_proj_weight, "k_proj.weight": k_proj_weight,
            "v_proj.weight": v_proj_weight, "output_proj.weight": o_proj_weight}


def run_multihead_self_attention(d_model: int, num_heads: int, q_proj_weight: Tensor, k_proj_weight: Tensor,
                                 v_proj_weight: Tensor, o_proj_weight: Tensor, in_features: Tensor) -> Tensor:
    attn = cs336_lm.MultiHeadSelfAttention(d_model, num_heads).to(q_proj_weight.device)
    attn.load_state_dict(_attention_state(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return attn(in_features)


def run_multihead_self_attention_with_rope(d_model: int, num_heads: int, max_seq_len: int, theta: float,
                                           q_proj_weight: Tensor, k_proj_weight: Tensor, v_proj_weight: Tensor,
                                           o_proj_weight: Tensor, in_features: Tensor,
                                           token_positions: Tensor | None = None) -> Tensor:
    attn = cs336_lm.MultiHeadSelfAttention(d_model, num_heads, max_seq_len, theta).to(q_proj_weight.device)
    attn.load_state_dict(_attention_state(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return attn(in_features, token_positions)


def run_transformer_block(d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float,
                          weights: dict[str, Tensor], in_features: Tensor) -> Tensor:
    block = cs336_lm.TransformerBlock(d_model, num_heads, d_ff, max_seq_len, theta)
    block = block.to(next(iter(weights.values())).device)
    block.load_state_dict(weights)
    return block(in_features)


def _build_lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights):
    lm = cs336_lm.TransformerLM(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta)
    lm = lm.to(weights["token_embeddings.weight"].device)
    lm.load_state_dict(weights)
    return lm


def run_transformer_lm(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                       d_ff: int, rope_theta: float, weights: dict[str, Tensor], in_indices: Tensor) -> Tensor:
    lm = _build_lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights)
    return lm(in_indices)


def run_cross_entropy(inputs: Tensor, targets: Tensor, ignore_index: int | None = None) -> Tensor:
    return cs336_lm.cross_entropy(inputs, targets, ignore_index=ignore_index)


def run_transformer_lm_incremental(vocab_size: int, context_length: int, d_model: int, num_layers: int,
                                   num_heads: int, d_ff: int, rope_theta: float, weights: dict[str, Tensor],
                                   in_indices: Tensor, chunk_sizes: Sequence[int]) -> Tensor:
    if sum(chunk_sizes) != in_indices.shape[-1]:
        raise ValueError("chunk_sizes must sum to sequence_length")
    lm = _build_lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights)
    cache = lm.new_cache()
    outputs, start = [], 0
    for size in chunk_sizes:
        outputs.append(lm(in_indices[:, start:start + size], kv_cache=cache))  # (batch, size, vocab)
        start += size
    return torch.cat(outputs, dim=1)


def run_next_token_distribution(logits: Tensor, temperature: float, top_k: int | None = None,
                                top_p: float | None = None) -> Tensor:
    return cs336_lm.next_token_distribution(logits, temperature, top_k, top_p)


def run_generate(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, rope_theta: float, weights: dict[str, Tensor], prompt: Tensor, max_new_tokens: int,
                 temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                 eos_token_id: int | None = None, seed: int = 0) -> Tensor:
    if prompt.shape[-1] + max_new_tokens > context_length:
        raise ValueError("prompt_length + max_new_tokens exceeds context_length")
    lm = _build_lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights)
    return cs336_lm.generate(lm, prompt, max_new_tokens, temperature, top_k, top_p, eos_token_id, seed)


def run_perplexity(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                   d_ff: int, rope_theta: float, weights: dict[str, Tensor], token_ids: Tensor,
                   stride: int) -> float:
    lm = _build_lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights)
    return cs336_lm.perplexity(lm, token_ids, stride)


def run_get_batch(dataset, batch_size: int, context_length: int, device: str) -> tuple[Tensor, Tensor]:
    return cs336_lm.get_batch(dataset, batch_size, context_length, device)


def run_gradient_clipping(parameters, max_l2_norm: float) -> None:
    return cs336_lm.gradient_clipping(parameters, max_l2_norm)


def get_adamw_cls() -> type[torch.optim.Optimizer]:
    return cs336_lm.AdamW


def run_get_lr_cosine_schedule(it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                               cosine_cycle_iters: int) -> float:
    return cs336_lm.get_lr_cosine_schedule(it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def run_save_checkpoint(model, optimizer, iteration, out) -> None:
    return cs336_lm.save_checkpoint(model, optimizer, iteration, out)


def run_load_checkpoint(src, model, optimizer) -> int:
    return cs336_lm.load_checkpoint(src, model, optimizer)


# --- GPT-2 variant --------------------------------------------------------------------------------------------
# The passed tensors are used as the module's parameters through torch.func.functional_call (no copy), so
# gradients reach them; the head is tied to transformer.wte.weight, so the dict has no lm_head.weight.


class _BoundGPT2:
    """A GPT2LM (built on the meta device) run with the given weights as its parameters."""

    def __init__(self, module, weights: dict[str, Tensor]):
        names = {name for name, _ in module.named_parameters()}
        missing = sorted(names - weights.keys())
        if missing:
            raise KeyError(f"missing GPT-2 weights: {missing}")
        self.module = module
        self.weights = {name: weights[name] for name in names}
        self.context_length = module.context_length

    def new_cache(self):
        return self.module.new_cache()

    def __call__(self, *args, **kwargs) -> Tensor:
        return torch.func.functional_call(self.module, self.weights, args, kwargs, strict=True)


def _build_gpt2(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights):
    with torch.device("meta"):
        module = cs336_lm.GPT2LM(vocab_size, context_length, d_model, num_layers, num_heads, d_ff)
    return _BoundGPT2(module, weights)


def run_layernorm(d_model: int, eps: float, weight: Tensor, bias: Tensor, in_features: Tensor) -> Tensor:
    with torch.device("meta"):
        norm = cs336_lm.LayerNorm(d_model, eps=eps)
    return torch.func.functional_call(norm, {"weight": weight, "bias": bias}, (in_features,), strict=True)


def run_gelu(in_features: Tensor) -> Tensor:
    return cs336_lm.gelu_tanh(in_features)


def run_gpt2_lm(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int, d_ff: int,
                weights: dict[str, Tensor], in_indices: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    lm = _build_gpt2(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights)
    return lm(in_indices, attention_mask=attention_mask)


def run_gpt2_lm_incremental(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                            d_ff: int, weights: dict[str, Tensor], in_indices: Tensor, chunk_sizes: Sequence[int],
                            attention_mask: Tensor | None = None) -> Tensor:
    if sum(chunk_sizes) != in_indices.shape[-1]:
        raise ValueError("chunk_sizes must sum to sequence_length")
    lm = _build_gpt2(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights)
    cache = lm.new_cache()
    outputs, start = [], 0
    for size in chunk_sizes:
        chunk_mask = None if attention_mask is None else attention_mask[..., start:start + size]
        outputs.append(lm(in_indices[..., start:start + size], kv_cache=cache, attention_mask=chunk_mask))
        start += size
    return torch.cat(outputs, dim=-2)


def run_gpt2_generate(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                      d_ff: int, weights: dict[str, Tensor], prompt: Tensor, max_new_tokens: int,
                      temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                      eos_token_id: int | None = None, seed: int = 0,
                      attention_mask: Tensor | None = None) -> Tensor:
    if prompt.shape[-1] + max_new_tokens > context_length:
        raise ValueError("prompt_length + max_new_tokens exceeds context_length")
    lm = _build_gpt2(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights)
    return cs336_lm.generate_gpt2(lm, prompt, max_new_tokens, temperature, top_k, top_p, eos_token_id, seed,
                                  attention_mask)


def run_gpt2_perplexity(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                        d_ff: int, weights: dict[str, Tensor], token_ids: Tensor, stride: int) -> float:
    lm = _build_gpt2(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights)
    return cs336_lm.perplexity(lm, token_ids, stride)
