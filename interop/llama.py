"""Convert weights between Hugging Face `LlamaForCausalLM` and this kit's TransformerLM.

The two architectures compute the same function, with one difference of convention:
which dimensions of a head RoPE rotates together.

    this kit (interleaved):  pair k = dims (2k, 2k+1)
    HF Llama (rotate-half):  pair k = dims (k, k + d_head/2)

Both rotate pair k by the angle pos · θ^(−2k/d_head). So we reorder the rows of W_q and
W_k inside every head: HF row k goes to row 2k, HF row k + d_head/2 to row 2k+1.

    HF rows of one head:    [x0 x1 x2 x3 | y0 y1 y2 y3]     (half = d_head/2 = 4)
    kit rows of one head:   [x0 y0 x1 y1 x2 y2 x3 y3]

Each q (and k) then holds the same numbers in a new order, RoPE rotates the same pairs by
the same angles, and the score q·k, a sum over the head's dimensions, does not depend on
the order. W_v and W_o are not permuted: the attention output never passes through RoPE.

Only what the kit can express is supported: one key/value head per query head (no
grouped-query attention), no biases, separate input and output embeddings, RMSNorm
eps = 1e-5, plain RoPE without scaling. Anything else raises ValueError.
"""

from __future__ import annotations

import re

import einx
from torch import Tensor

# Names inside one block: HF "model.layers.{i}.<key>" <-> kit "layers.{i}.<value>".
_BLOCK_NAMES = {
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.o_proj.weight": "attn.output_proj.weight",
    "mlp.gate_proj.weight": "ffn.w1.weight",  # silu branch
    "mlp.up_proj.weight": "ffn.w3.weight",  # linear branch
    "mlp.down_proj.weight": "ffn.w2.weight",
    "input_layernorm.weight": "ln1.weight",
    "post_attention_layernorm.weight": "ln2.weight",
}
_OTHER_NAMES = {
    "model.embed_tokens.weight": "token_embeddings.weight",
    "model.norm.weight": "ln_final.weight",
    "lm_head.weight": "lm_head.weight",
}
_ROPE_ROWS = {"self_attn.q_proj.weight", "self_attn.k_proj.weight"}  # HF names of the weights RoPE sees
_HF_BLOCK = re.compile(r"model\.layers\.(\d+)\.(.+)")
_SPEC_BLOCK = re.compile(r"layers\.(\d+)\.(.+)")


def _permute_rows(name: str, w: Tensor, num_heads: int, pattern: str) -> Tensor:
    """Reorder the rows of a (heads·d_head, d_model) q/k projection inside every head."""
    rows, d_model = w.shape
    if rows != d_model:
        raise ValueError(
            f"{name} has shape {tuple(w.shape)}, the kit needs (d_model, d_model): grouped-query attention "
            "(num_key_value_heads != num_attention_heads) and head_dim·num_heads != hidden_size are not supported"
        )
    if d_model % (2 * num_heads):
        raise ValueError(f"d_model={d_model} does not split into {num_heads} heads of even size")
    return einx.id(pattern, w, heads=num_heads, two=2).contiguous()


def llama_to_spec(hf_state_dict: dict[str, Tensor], num_heads: int) -> dict[str, Tensor]:
    """HF LlamaForCausalLM state dict -> this kit's TransformerLM state dict."""
    hf = hf_state_dict
    lm_head, embeddings = hf.get("lm_head.weight"), hf.get("model.embed_tokens.weight")
    if lm_head is None or (embeddings is not None and lm_head.data_ptr() == embeddings.data_ptr()):
        raise ValueError("tied input/output embeddings are not supported: the kit has its own lm_head weight")
    spec = {}
    for name, w in hf.items():
        if name.endswith(".bias"):
            raise ValueError(f"biases are not supported (attention_bias and mlp_bias must be False): {name}")
        if name in _OTHER_NAMES:
            spec[_OTHER_NAMES[name]] = w
            continue
        match = _HF_BLOCK.fullmatch(name)
        if match is None or match[2] not in _BLOCK_NAMES:
            raise ValueError(f"unexpected weight in a Llama state dict: {name}")
        layer, key = match.groups()
        if key in _ROPE_ROWS:  # rows per head: [x | y] -> [x0 y0 x1 y1 ...]
            w = _permute_rows(name, w, num_heads, "(heads two half) d_model -> (heads half two) d_model")
        spec[f"layers.{layer}.{_BLOCK_NAMES[key]}"] = w
    return spec


def spec_to_llama(spec_state_dict: dict[str, Tensor], num_heads: int) -> dict[str, Tensor]:
    """This kit's TransformerLM state dict -> HF LlamaForCausalLM state dict (the inverse)."""
    hf_block = {kit: hf for hf, kit in _BLOCK_NAMES.items()}
    hf_other = {kit: hf for hf, kit in _OTHER_NAMES.items()}
    hf = {}
    for name, w in spec_state_dict.items():
        if name in hf_other:
            hf[hf_other[name]] = w
            continue
        match = _SPEC_BLOCK.fullmatch(name)
        if match is None or match[2] not in hf_block:
            raise ValueError(f"unexpected weight in a TransformerLM state dict: {name}")
        layer, key = match[1], hf_block[match[2]]
        if key in _ROPE_ROWS:  # rows per head: [x0 y0 x1 y1 ...] -> [x | y]
            w = _permute_rows(name, w, num_heads, "(heads half two) d_model -> (heads two half) d_model")
        hf[f"model.layers.{layer}.{key}"] = w
    return hf


def config_from_llama(hf_config) -> dict:
    """A LlamaConfig -> keyword arguments for TransformerConfig; ValueError if the kit can't express it."""
    c = hf_config
    num_heads = c.num_attention_heads
    rope = getattr(c, "rope_parameters", None)  # transformers >= 5
    if rope is None:  # transformers 4.x
        rope = {"rope_theta": c.rope_theta, **(c.rope_scaling or {})}
    rope = dict(rope)
    theta = rope.pop("rope_theta")
    rope_type = rope.pop("rope_type", "default")

    problems = []
    if (c.num_key_value_heads or num_heads) != num_heads:
        problems.append(
            f"grouped-query attention (num_key_value_heads={c.num_key_value_heads} != num_attention_heads={num_heads})"
        )
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // num_heads
    if head_dim * num_heads != c.hidden_size or head_dim % 2:
        problems.append(f"head_dim={head_dim} is odd or times {num_heads} heads is not hidden_size={c.hidden_size}")
    if getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        problems.append("biases (attention_bias / mlp_bias)")
    if getattr(c, "tie_word_embeddings", False):
        problems.append("tied input/output embeddings (tie_word_embeddings=True)")
    if c.hidden_act != "silu":
        problems.append(f"hidden_act={c.hidden_act!r} (the kit's SwiGLU uses silu)")
    if c.rms_norm_eps != 1e-5:
        problems.append(f"rms_norm_eps={c.rms_norm_eps} (the kit's RMSNorm uses 1e-5)")
    if rope_type != "default" or rope:
        problems.append(f"RoPE scaling (rope_type={rope_type!r}, other settings {rope})")
    if problems:
        raise ValueError("this Llama config cannot be expressed by TransformerLM: " + "; ".join(problems))
    return dict(
        vocab_size=c.vocab_size,
        context_length=c.max_position_embeddings,
        d_model=c.hidden_size,
        num_layers=c.num_hidden_layers,
        num_heads=num_heads,
        d_ff=c.intermediate_size,
        rope_theta=float(theta),
    )
