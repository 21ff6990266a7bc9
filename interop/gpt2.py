"""transformers' GPT2Config -> the kit's GPT2Config. No weight conversion: GPT2LM has GPT2LMHeadModel's
parameter names and layouts, so its state dict loads unchanged."""

from __future__ import annotations


def config_from_gpt2(hf_config) -> dict:
    """A GPT2Config -> keyword arguments for GPT2Config; ValueError if the kit can't express it."""
    c = hf_config
    problems = []
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        problems.append(f"activation_function={c.activation_function!r} (the kit's GELU is the tanh approximation)")
    if c.layer_norm_epsilon != 1e-5:
        problems.append(f"layer_norm_epsilon={c.layer_norm_epsilon} (the kit's LayerNorm uses 1e-5)")
    if not getattr(c, "tie_word_embeddings", True):
        problems.append("untied input/output embeddings (tie_word_embeddings=False)")
    if getattr(c, "scale_attn_by_inverse_layer_idx", False) or getattr(c, "reorder_and_upcast_attn", False):
        problems.append("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn")
    if not getattr(c, "scale_attn_weights", True):
        problems.append("scale_attn_weights=False (the kit scales scores by 1/√d_head)")
    if c.n_embd % c.n_head:
        problems.append(f"n_embd={c.n_embd} is not a multiple of n_head={c.n_head}")
    if problems:
        raise ValueError("this GPT-2 config cannot be expressed by GPT2LM: " + "; ".join(problems))
    return dict(vocab_size=c.vocab_size, context_length=c.n_positions, d_model=c.n_embd, num_layers=c.n_layer,
                num_heads=c.n_head, d_ff=c.n_inner or 4 * c.n_embd, layer_norm_eps=c.layer_norm_epsilon)
