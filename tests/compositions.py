"""The reference compositions of a submission's own parts (SPEC §4.6).

Each function computes a composite (attention, block, LM, KV cache) the way the reference
composes it, but every part is the submission's own, called through its own adapters
(`impl.run_*`). A composite that equals this is composed correctly even when a part is wrong;
that part pays in its own item. The keyword arguments are the composite adapter's own.
"""

from __future__ import annotations

import torch
from torch import Tensor

RMSNORM_EPS = 1e-5  # the SPEC model's RMSNorm eps (CS336's default)


def swiglu(impl, d_model, d_ff, w1_weight, w2_weight, w3_weight, in_features) -> Tensor:
    """W2( silu(W1 x) ⊙ W3 x ) with the submission's own Linear and SiLU."""
    gate = impl.run_silu(impl.run_linear(d_model, d_ff, w1_weight, in_features))
    return impl.run_linear(d_ff, d_model, w2_weight, gate * impl.run_linear(d_model, d_ff, w3_weight, in_features))


def _split_heads(t: Tensor, num_heads: int) -> Tensor:
    """(..., seq, d_model) -> (..., heads, seq, d_head); projection rows are ordered (heads, d_head)."""
    return t.unflatten(-1, (num_heads, t.shape[-1] // num_heads)).transpose(-3, -2)


def multihead_self_attention(impl, d_model, num_heads, q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight,
                             in_features, max_seq_len=None, theta=None, token_positions=None, rope=False) -> Tensor:
    q, k, v = (_split_heads(impl.run_linear(d_model, d_model, w, in_features), num_heads)
               for w in (q_proj_weight, k_proj_weight, v_proj_weight))  # (..., h, seq, d_head)
    seq = in_features.shape[-2]
    if rope:
        default = torch.arange(seq, device=in_features.device)
        positions = (default if token_positions is None else token_positions).unsqueeze(-2).expand(*q.shape[:-1])  # every head
        q = impl.run_rope(q.shape[-1], theta, max_seq_len, q, positions)
        k = impl.run_rope(k.shape[-1], theta, max_seq_len, k, positions)
    causal = torch.ones(seq, seq, dtype=torch.bool, device=in_features.device).tril()  # key j ≤ query i
    out = impl.run_scaled_dot_product_attention(q, k, v, causal.expand(*q.shape[:-1], seq))
    return impl.run_linear(d_model, d_model, o_proj_weight, out.transpose(-3, -2).flatten(-2))


def multihead_self_attention_with_rope(impl, d_model, num_heads, max_seq_len, theta, q_proj_weight, k_proj_weight,
                                       v_proj_weight, o_proj_weight, in_features, token_positions=None) -> Tensor:
    return multihead_self_attention(impl, d_model, num_heads, q_proj_weight, k_proj_weight, v_proj_weight,
                                    o_proj_weight, in_features, max_seq_len, theta, token_positions, rope=True)


def transformer_block(impl, d_model, num_heads, d_ff, max_seq_len, theta, weights, in_features) -> Tensor:
    """x + attn(ln1(x)), then + ffn(ln2(·)), with the submission's RMSNorm, attention and SwiGLU."""
    w = weights
    normed = impl.run_rmsnorm(d_model, RMSNORM_EPS, w["ln1.weight"], in_features)
    x = in_features + impl.run_multihead_self_attention_with_rope(
        d_model, num_heads, max_seq_len, theta, w["attn.q_proj.weight"], w["attn.k_proj.weight"],
        w["attn.v_proj.weight"], w["attn.output_proj.weight"], normed)
    normed = impl.run_rmsnorm(d_model, RMSNORM_EPS, w["ln2.weight"], x)
    return x + impl.run_swiglu(d_model, d_ff, w["ffn.w1.weight"], w["ffn.w2.weight"], w["ffn.w3.weight"], normed)


def transformer_lm(impl, vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights,
                   in_indices) -> Tensor:
    """embedding → the submission's own blocks → ln_final → lm_head."""
    x = impl.run_embedding(vocab_size, d_model, weights["token_embeddings.weight"], in_indices)
    for i in range(num_layers):
        prefix = f"layers.{i}."
        layer = {name[len(prefix):]: value for name, value in weights.items() if name.startswith(prefix)}
        x = impl.run_transformer_block(d_model, num_heads, d_ff, context_length, rope_theta, layer, x)
    x = impl.run_rmsnorm(d_model, RMSNORM_EPS, weights["ln_final.weight"], x)
    return impl.run_linear(d_model, vocab_size, weights["lm_head.weight"], x)


def transformer_lm_incremental(impl, chunk_sizes, **lm_args) -> Tensor:
    """What a KV cache must reproduce: the submission's own full forward."""
    return impl.run_transformer_lm(**lm_args)


def transformer_lm_incremental_by_prefixes(impl, chunk_sizes, **lm_args) -> Tensor:
    """Each chunk's logits from the submission's own full forward over everything up to the chunk's end:
    what a correct cache gives whatever the attention's mask does (a missing or misaligned causal
    mask is the attention's mistake, charged there)."""
    logits, end = [], 0
    tokens = lm_args.pop("in_indices")
    for size in chunk_sizes:
        start, end = end, end + size
        logits.append(impl.run_transformer_lm(**lm_args, in_indices=tokens[:, :end])[:, start:end])
    return torch.cat(logits, dim=1)


class NotApplicable(Exception):
    """This composition does not apply to the submission (raised instead of an answer)."""


def transformer_lm_incremental_if_the_lm_is_not_causal(impl, chunk_sizes, **lm_args) -> Tensor:
    """A KV cache is only defined for a causal model. When the submission's own LM is not causal on a
    prefix the chunks end at (its attention's mistake, charged there), whatever its cache returns is
    taken as it is."""
    tokens = lm_args["in_indices"]
    end = 0
    for size in chunk_sizes:
        end += size
        if end < 2:
            continue
        cut = end // 2
        prefix = tokens[:, :end]
        changed = prefix.clone()
        changed[:, cut:] = (changed[:, cut:] + 1) % lm_args["vocab_size"]
        before = impl.run_transformer_lm(**dict(lm_args, in_indices=prefix))[:, :cut]
        after = impl.run_transformer_lm(**dict(lm_args, in_indices=changed))[:, :cut]
        if not torch.allclose(before, after, rtol=1e-4, atol=1e-5):
            return impl.run_transformer_lm_incremental(**lm_args, chunk_sizes=chunk_sizes)
    raise NotApplicable("the LM is causal on every prefix the chunks end at")


def transformer_lm_incremental_from_parts(impl, vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                                          rope_theta, weights, in_indices, chunk_sizes) -> Tensor:
    """The reference's KV-cache logic with the submission's own Linear, RoPE, attention, RMSNorm, SwiGLU:
    each chunk's queries see the cached keys and values of every earlier chunk (bottom-right causal
    mask) and continue their positions. A part that is only wrong across chunk boundaries (a softmax
    that normalises over all queries) then shows here too, and is charged to that part."""
    w, logits, start = weights, [], 0
    caches: list[tuple[Tensor, Tensor] | None] = [None] * num_layers
    for size in chunk_sizes:
        end = start + size
        x = impl.run_embedding(vocab_size, d_model, w["token_embeddings.weight"], in_indices[:, start:end])
        for i in range(num_layers):
            p = f"layers.{i}."
            h = impl.run_rmsnorm(d_model, RMSNORM_EPS, w[p + "ln1.weight"], x)
            q, k, v = (_split_heads(impl.run_linear(d_model, d_model, w[p + f"attn.{name}.weight"], h), num_heads)
                       for name in ("q_proj", "k_proj", "v_proj"))  # (batch, heads, size, d_head)
            positions = torch.arange(start, end, device=x.device).expand(*q.shape[:-1])
            q = impl.run_rope(q.shape[-1], rope_theta, context_length, q, positions)
            k = impl.run_rope(k.shape[-1], rope_theta, context_length, k, positions)
            if caches[i] is not None:
                k, v = torch.cat([caches[i][0], k], dim=-2), torch.cat([caches[i][1], v], dim=-2)
            caches[i] = (k, v)
            # Query a (position start + a) may see key j ≤ start + a: the mask is aligned bottom-right.
            mask = torch.arange(end, device=x.device)[None, :] <= torch.arange(start, end, device=x.device)[:, None]
            out = impl.run_scaled_dot_product_attention(q, k, v, mask.expand(*q.shape[:-1], end))
            x = x + impl.run_linear(d_model, d_model, w[p + "attn.output_proj.weight"], out.transpose(-3, -2).flatten(-2))
            h = impl.run_rmsnorm(d_model, RMSNORM_EPS, w[p + "ln2.weight"], x)
            x = x + impl.run_swiglu(d_model, d_ff, w[p + "ffn.w1.weight"], w[p + "ffn.w2.weight"], w[p + "ffn.w3.weight"], h)
        x = impl.run_rmsnorm(d_model, RMSNORM_EPS, w["ln_final.weight"], x)
        logits.append(impl.run_linear(d_model, vocab_size, w["lm_head.weight"], x))
        start = end
    return torch.cat(logits, dim=1)


def scaled_dot_product_attention(impl, Q, K, V, mask=None) -> Tensor:
    """softmax(QKᵀ/√d_k + mask) V with the submission's own softmax."""
    scores = (Q / Q.shape[-1] ** 0.5) @ K.transpose(-2, -1)  # (... queries, keys)
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    return impl.run_softmax(scores, -1) @ V


# --- The GPT-2 variant -----------------------------------------------------------------------------

GPT2_EPS = 1e-5  # GPT-2's LayerNorm eps


def gpt2_lm_from_parts(impl, vocab_size, context_length, d_model, num_layers, num_heads, d_ff, weights, in_indices,
                       chunk_sizes=None) -> Tensor:
    """GPT-2 the reference's way (wte + wpe, Conv1D layouts, biases, tied head) with the submission's own
    LayerNorm, GELU and scaled dot-product attention. With chunk_sizes, as a KV cache computes it: each
    chunk's queries see the keys and values of every earlier chunk (bottom-right causal mask)."""
    w, seq = weights, in_indices.shape[-1]
    chunk_sizes = chunk_sizes or [seq]
    x = w["transformer.wte.weight"][in_indices] + w["transformer.wpe.weight"][:seq]  # learned positions 0 … seq−1
    for i in range(num_layers):
        p = f"transformer.h.{i}."
        h = impl.run_layernorm(d_model, GPT2_EPS, w[p + "ln_1.weight"], w[p + "ln_1.bias"], x)
        q, k, v = (_split_heads(t, num_heads) for t in (h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]).chunk(3, -1))
        outs, start = [], 0
        for size in chunk_sizes:
            end = start + size
            causal = torch.ones(size, end, dtype=torch.bool, device=x.device).tril(diagonal=start)  # key j ≤ query start+i
            outs.append(impl.run_scaled_dot_product_attention(q[..., start:end, :], k[..., :end, :], v[..., :end, :],
                                                              causal.expand(*q.shape[:-2], size, end)))
            start = end
        attended = torch.cat(outs, dim=-2).transpose(-3, -2).flatten(-2)
        x = x + attended @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = impl.run_layernorm(d_model, GPT2_EPS, w[p + "ln_2.weight"], w[p + "ln_2.bias"], x)
        x = x + impl.run_gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] \
            + w[p + "mlp.c_proj.bias"]
    x = impl.run_layernorm(d_model, GPT2_EPS, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], x)
    return x @ w["transformer.wte.weight"].T  # the tied head


def gpt2_lm_incremental(impl, chunk_sizes, **lm_args) -> Tensor:
    """What a GPT-2 KV cache must reproduce: the submission's own full forward."""
    return impl.run_gpt2_lm(**lm_args)


def gpt2_lm_incremental_by_prefixes(impl, chunk_sizes, **lm_args) -> Tensor:
    """Each chunk's logits from the submission's own full forward over everything up to the chunk's end."""
    logits, end = [], 0
    tokens = lm_args.pop("in_indices")
    for size in chunk_sizes:
        start, end = end, end + size
        logits.append(impl.run_gpt2_lm(**lm_args, in_indices=tokens[:, :end])[:, start:end])
    return torch.cat(logits, dim=1)


# GPT-2's cache passes if it equals the reference, the submission's own full forward, its own forward
# over each chunk's prefix, or the reference's cache logic over its own LayerNorm, GELU and attention.
GPT2_KV_CACHE = (gpt2_lm_incremental, gpt2_lm_incremental_by_prefixes, gpt2_lm_from_parts)


# A KV cache passes if it equals the reference, the submission's own full forward, its own forward
# over each chunk's prefix, or the reference's cache logic over the submission's own parts; and it is
# not graded on values when the submission's own LM is not causal.
KV_CACHE = (transformer_lm_incremental, transformer_lm_incremental_by_prefixes, transformer_lm_incremental_from_parts,
            transformer_lm_incremental_if_the_lm_is_not_causal)

COMPOSITIONS = {
    "run_swiglu": swiglu,
    "run_scaled_dot_product_attention": scaled_dot_product_attention,
    "run_multihead_self_attention": multihead_self_attention,
    "run_multihead_self_attention_with_rope": multihead_self_attention_with_rope,
    "run_transformer_block": transformer_block,
    "run_transformer_lm": transformer_lm,
    "run_transformer_lm_incremental": transformer_lm_incremental,
    "run_gpt2_lm": gpt2_lm_from_parts,
    "run_gpt2_lm_incremental": gpt2_lm_incremental,
}
