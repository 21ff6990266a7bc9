"""Adapters for a package with the assignment's API (`student`, `reference`, or a copy of either).

Like CS336's tests/adapters.py: each function builds the module the student wrote, puts
the given weights in it, and runs it. Weights go in with `torch.func.functional_call`,
so gradients flow back to the tensors the test passed in.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor, nn
from torch.func import functional_call


def _call(module: nn.Module, weights: dict[str, Tensor], *args, **kwargs):
    expected = {name for name, _ in module.named_parameters()}
    given = set(weights)
    if expected != given:
        raise ValueError(
            f"{type(module).__name__} has parameters {sorted(expected)} but the SPEC weights are {sorted(given)}; "
            f"missing in your module: {sorted(given - expected)}, not in the SPEC: {sorted(expected - given)}"
        )
    return functional_call(module, weights, args, kwargs)


def _chunked(model: nn.Module, weights: dict[str, Tensor], in_indices: Tensor, chunk_sizes, attention_mask) -> Tensor:
    """ONE model fed in consecutive chunks through its KV cache (each chunk with its columns of the mask)."""
    kv_cache = model.make_kv_cache()
    logits, start = [], 0
    for size in chunk_sizes:
        chunk = in_indices[:, start : start + size]
        padded = {} if attention_mask is None else {"attention_mask": attention_mask[:, start : start + size]}
        logits.append(_call(model, weights, chunk, kv_cache=kv_cache, **padded))
        start += size
    return torch.cat(logits, dim=1)


class PackageAdapters:
    def __init__(self, package: ModuleType, description: str | None = None):
        self.pkg = package
        self.description = description or package.__name__

    def _lm(self, vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights):
        config = self.pkg.TransformerConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            rope_theta=rope_theta,
        )
        some_weight = next(iter(weights.values()))
        return self.pkg.TransformerLM(config, device=some_weight.device, dtype=some_weight.dtype)

    def run_linear(self, d_in, d_out, weights, in_features):
        linear = self.pkg.Linear(d_in, d_out, device=weights.device, dtype=weights.dtype)
        return _call(linear, {"weight": weights}, in_features)

    def run_embedding(self, vocab_size, d_model, weights, token_ids):
        embedding = self.pkg.Embedding(vocab_size, d_model, device=weights.device, dtype=weights.dtype)
        return _call(embedding, {"weight": weights}, token_ids)

    def run_rmsnorm(self, d_model, eps, weights, in_features):
        norm = self.pkg.RMSNorm(d_model, eps=eps, device=weights.device, dtype=weights.dtype)
        return _call(norm, {"weight": weights}, in_features)

    def run_silu(self, in_features):
        return self.pkg.silu(in_features)

    def run_swiglu(self, d_model, d_ff, w1_weight, w2_weight, w3_weight, in_features):
        ffn = self.pkg.SwiGLU(d_model, d_ff, device=w1_weight.device, dtype=w1_weight.dtype)
        weights = {"w1.weight": w1_weight, "w2.weight": w2_weight, "w3.weight": w3_weight}
        return _call(ffn, weights, in_features)

    def run_softmax(self, in_features, dim):
        return self.pkg.softmax(in_features, dim)

    def run_scaled_dot_product_attention(self, Q, K, V, mask=None):
        return self.pkg.scaled_dot_product_attention(Q, K, V, mask)

    def run_rope(self, d_k, theta, max_seq_len, in_query_or_key, token_positions):
        rope = self.pkg.RotaryPositionalEmbedding(theta, d_k, max_seq_len, device=in_query_or_key.device)
        return rope(in_query_or_key, token_positions)

    def _attention(self, d_model, num_heads, max_seq_len, theta, q, k, v, o, in_features, token_positions):
        attn = self.pkg.MultiHeadSelfAttention(
            d_model, num_heads, max_seq_len=max_seq_len, theta=theta, device=q.device, dtype=q.dtype
        )
        weights = {"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v, "output_proj.weight": o}
        return _call(attn, weights, in_features, token_positions)

    def run_multihead_self_attention(self, d_model, num_heads, q, k, v, o, in_features):
        return self._attention(d_model, num_heads, None, None, q, k, v, o, in_features, None)

    def run_multihead_self_attention_with_rope(
        self, d_model, num_heads, max_seq_len, theta, q, k, v, o, in_features, token_positions=None
    ):
        return self._attention(d_model, num_heads, max_seq_len, theta, q, k, v, o, in_features, token_positions)

    def run_transformer_block(self, d_model, num_heads, d_ff, max_seq_len, theta, weights, in_features):
        some_weight = next(iter(weights.values()))
        block = self.pkg.TransformerBlock(
            d_model, num_heads, d_ff, max_seq_len, theta, device=some_weight.device, dtype=some_weight.dtype
        )
        return _call(block, weights, in_features)

    def run_transformer_lm(self, *lm_args):
        model_args, (weights, in_indices, attention_mask) = lm_args[:7], (list(lm_args[7:]) + [None])[:3]
        model = self._lm(*model_args, weights)
        # The mask only when there is one: a model written before padded batches still answers the rest.
        padded = {} if attention_mask is None else {"attention_mask": attention_mask}
        return _call(model, weights, in_indices, **padded)

    def run_transformer_lm_incremental(self, *lm_args):
        model_args, (weights, in_indices, chunk_sizes, attention_mask) = lm_args[:7], (list(lm_args[7:]) + [None])[:4]
        return _chunked(self._lm(*model_args, weights), weights, in_indices, chunk_sizes, attention_mask)

    def run_cross_entropy(self, inputs, targets, ignore_index=None):
        return self.pkg.cross_entropy(inputs, targets, ignore_index)

    def run_next_token_distribution(self, logits, temperature, top_k=None, top_p=None):
        return self.pkg.next_token_distribution(logits, temperature, top_k, top_p)

    def run_generate(self, *args):
        *model_args, weights = args[:8]
        prompt, max_new_tokens, temperature, top_k, top_p, eos_token_id, seed, attention_mask = \
            (list(args[8:]) + [None] * 8)[:8]
        model = self._lm(*model_args, weights)
        model.load_state_dict(weights)
        padded = {} if attention_mask is None else {"attention_mask": attention_mask}
        return self.pkg.generate(
            model,
            prompt,
            max_new_tokens,
            temperature=0.0 if temperature is None else temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            seed=0 if seed is None else seed,
            **padded,
        )

    def run_perplexity(self, *args):
        *model_args, weights, token_ids, stride = args
        model = self._lm(*model_args, weights)
        model.load_state_dict(weights)
        return self.pkg.perplexity(model, token_ids, stride)

    # --- The GPT-2 variant: the same interface as TransformerLM, so generate and perplexity run it unchanged ---

    def run_layernorm(self, d_model, eps, weight, bias, in_features):
        norm = self.pkg.LayerNorm(d_model, eps=eps, device=weight.device, dtype=weight.dtype)
        return _call(norm, {"weight": weight, "bias": bias}, in_features)

    def run_gelu(self, in_features):
        return self.pkg.gelu(in_features)

    def _gpt2(self, vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights):
        config = self.pkg.GPT2Config(vocab_size=vocab_size, context_length=context_length, d_model=d_model,
                                     num_layers=num_layers, num_heads=num_heads, d_ff=d_ff)
        some_weight = next(iter(weights.values()))
        return self.pkg.GPT2LM(config, device=some_weight.device, dtype=some_weight.dtype)

    def _loaded_gpt2(self, *model_args):
        """A GPT2LM holding the weights (for generate and perplexity, which call the model themselves).
        A state dict names the tied head twice; the same tensor goes under both names."""
        *model_args, weights = model_args
        model = self._gpt2(*model_args, weights)
        model.load_state_dict({**weights, "lm_head.weight": weights["transformer.wte.weight"]})
        return model

    def run_gpt2_lm(self, *args):
        model_args, (weights, in_indices, attention_mask) = args[:6], (list(args[6:]) + [None])[:3]
        model = self._gpt2(*model_args, weights)
        padded = {} if attention_mask is None else {"attention_mask": attention_mask}
        return _call(model, weights, in_indices, **padded)

    def run_gpt2_lm_incremental(self, *args):
        model_args, (weights, in_indices, chunk_sizes, attention_mask) = args[:6], (list(args[6:]) + [None])[:4]
        return _chunked(self._gpt2(*model_args, weights), weights, in_indices, chunk_sizes, attention_mask)

    def run_gpt2_generate(self, *args):
        model = self._loaded_gpt2(*args[:7])
        prompt, max_new_tokens, temperature, top_k, top_p, eos_token_id, seed, attention_mask = \
            (list(args[7:]) + [None] * 8)[:8]
        padded = {} if attention_mask is None else {"attention_mask": attention_mask}
        return self.pkg.generate(model, prompt, max_new_tokens, temperature=0.0 if temperature is None else temperature,
                                 top_k=top_k, top_p=top_p, eos_token_id=eos_token_id, seed=0 if seed is None else seed,
                                 **padded)

    def run_gpt2_perplexity(self, *args):
        *model_args, token_ids, stride = args
        return self.pkg.perplexity(self._loaded_gpt2(*model_args), token_ids, stride)

    # --- Training: CS336's adapters (live objects; the tests reach them through adapters/drivers.py) ---

    def run_get_batch(self, dataset, batch_size, context_length, device):
        return self.pkg.get_batch(dataset, batch_size, context_length, device)

    def run_gradient_clipping(self, parameters, max_l2_norm):
        return self.pkg.gradient_clipping(parameters, max_l2_norm)

    def get_adamw_cls(self):
        return self.pkg.AdamW

    def run_get_lr_cosine_schedule(self, it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters):
        return self.pkg.get_lr_cosine_schedule(it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)

    def run_save_checkpoint(self, model, optimizer, iteration, out):
        return self.pkg.save_checkpoint(model, optimizer, iteration, out)

    def run_load_checkpoint(self, src, model, optimizer):
        return self.pkg.load_checkpoint(src, model, optimizer)

    def build_lm(self, vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights):
        """The package's TransformerLM holding these weights (for the training driver)."""
        model = self._lm(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights)
        model.load_state_dict(weights)
        return model

    def run_train_step(self, model, optimizer, inputs, targets, it, max_learning_rate, min_learning_rate, warmup_iters,
                       cosine_cycle_iters, max_l2_norm):
        config = self.pkg.TrainingConfig(max_learning_rate=max_learning_rate, min_learning_rate=min_learning_rate,
                                         warmup_iters=warmup_iters, cosine_cycle_iters=cosine_cycle_iters,
                                         max_l2_norm=max_l2_norm)
        return self.pkg.train_step(model, optimizer, inputs, targets, it, config)
