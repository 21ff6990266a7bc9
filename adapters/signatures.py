"""The canonical adapter signatures: one typed function per graded operation.

Every test calls the implementation under test only through these functions (via a
`Bound` handle). Each one is checked on every call with jaxtyping + beartype, whatever
implementation answers it, so a wrong shape or dtype is reported with the argument and
the dimension that disagree. The names, parameter names and order follow SPEC §3 and are
call-compatible with CS336's `tests/adapters.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from beartype import beartype
from jaxtyping import Bool, Float, Int, jaxtyped
from torch import Tensor

from .dispatch import dispatch
from .drivers import drive

checked = jaxtyped(typechecker=beartype)


@checked
def run_linear(
    d_in: int,
    d_out: int,
    weights: Float[Tensor, "d_out d_in"],
    in_features: Float[Tensor, "... d_in"],
) -> Float[Tensor, "... d_out"]:
    """y = x Wᵀ. `weights` is laid out (d_out, d_in), as nn.Linear stores it; no bias."""
    return dispatch("run_linear", d_in, d_out, weights, in_features)


@checked
def run_embedding(
    vocab_size: int,
    d_model: int,
    weights: Float[Tensor, "vocab_size d_model"],
    token_ids: Int[Tensor, "..."],
) -> Float[Tensor, "... d_model"]:
    """Row `token_ids[...]` of the (vocab_size, d_model) table."""
    return dispatch("run_embedding", vocab_size, d_model, weights, token_ids)


@checked
def run_rmsnorm(
    d_model: int,
    eps: float,
    weights: Float[Tensor, "d_model"],
    in_features: Float[Tensor, "... d_model"],
) -> Float[Tensor, "... d_model"]:
    """x * rsqrt(mean(x², -1) + eps) * g, in at least float32, cast back to the input dtype."""
    return dispatch("run_rmsnorm", d_model, eps, weights, in_features)


@checked
def run_silu(in_features: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """silu(x) = x · σ(x), elementwise."""
    return dispatch("run_silu", in_features)


@checked
def run_swiglu(
    d_model: int,
    d_ff: int,
    w1_weight: Float[Tensor, "d_ff d_model"],
    w2_weight: Float[Tensor, "d_model d_ff"],
    w3_weight: Float[Tensor, "d_ff d_model"],
    in_features: Float[Tensor, "... d_model"],
) -> Float[Tensor, "... d_model"]:
    """W2( silu(W1 x) ⊙ W3 x ). W1 is the gated branch, W3 the linear one."""
    return dispatch("run_swiglu", d_model, d_ff, w1_weight, w2_weight, w3_weight, in_features)


@checked
def run_softmax(in_features: Float[Tensor, "..."], dim: int) -> Float[Tensor, "..."]:
    """Numerically stable softmax over `dim` (inputs shifted by +1000 must work)."""
    return dispatch("run_softmax", in_features, dim)


@checked
def run_scaled_dot_product_attention(
    Q: Float[Tensor, "... queries d_k"],
    K: Float[Tensor, "... keys d_k"],
    V: Float[Tensor, "... keys d_v"],
    mask: Bool[Tensor, "... queries keys"] | None = None,
) -> Float[Tensor, "... queries d_v"]:
    """softmax(Q Kᵀ / √d_k + mask) V. `mask` is True where the query MAY attend to the key."""
    return dispatch("run_scaled_dot_product_attention", Q, K, V, mask)


@checked
def run_rope(
    d_k: int,
    theta: float,
    max_seq_len: int,
    in_query_or_key: Float[Tensor, "... sequence_length d_k"],
    token_positions: Int[Tensor, "... sequence_length"],
) -> Float[Tensor, "... sequence_length d_k"]:
    """Rotate interleaved pairs (2k, 2k+1) by pos · θ^(−2k/d_k) for k = 0 … d_k/2 − 1."""
    return dispatch("run_rope", d_k, theta, max_seq_len, in_query_or_key, token_positions)


@checked
def run_multihead_self_attention(
    d_model: int,
    num_heads: int,
    q_proj_weight: Float[Tensor, "d_model d_model"],
    k_proj_weight: Float[Tensor, "d_model d_model"],
    v_proj_weight: Float[Tensor, "d_model d_model"],
    o_proj_weight: Float[Tensor, "d_model d_model"],
    in_features: Float[Tensor, "... sequence_length d_model"],
) -> Float[Tensor, "... sequence_length d_model"]:
    """Causal multi-head self-attention without RoPE; projection rows are ordered (heads, d_head)."""
    return dispatch(
        "run_multihead_self_attention",
        d_model, num_heads, q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight, in_features,
    )


@checked
def run_multihead_self_attention_with_rope(
    d_model: int,
    num_heads: int,
    max_seq_len: int,
    theta: float,
    q_proj_weight: Float[Tensor, "d_model d_model"],
    k_proj_weight: Float[Tensor, "d_model d_model"],
    v_proj_weight: Float[Tensor, "d_model d_model"],
    o_proj_weight: Float[Tensor, "d_model d_model"],
    in_features: Float[Tensor, "... sequence_length d_model"],
    token_positions: Int[Tensor, "... sequence_length"] | None = None,
) -> Float[Tensor, "... sequence_length d_model"]:
    """As run_multihead_self_attention, with RoPE on q and k of every head (positions default to 0…seq−1)."""
    return dispatch(
        "run_multihead_self_attention_with_rope",
        d_model, num_heads, max_seq_len, theta,
        q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight, in_features, token_positions,
    )


@checked
def run_transformer_block(
    d_model: int,
    num_heads: int,
    d_ff: int,
    max_seq_len: int,
    theta: float,
    weights: dict[str, Tensor],
    in_features: Float[Tensor, "batch sequence_length d_model"],
) -> Float[Tensor, "batch sequence_length d_model"]:
    """Pre-norm block. `weights` keys: attn.{q,k,v,output}_proj.weight, ln1.weight, ffn.w{1,2,3}.weight, ln2.weight."""
    return dispatch("run_transformer_block", d_model, num_heads, d_ff, max_seq_len, theta, weights, in_features)


@checked
def run_transformer_lm(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    in_indices: Int[Tensor, "batch sequence_length"],
    attention_mask: Bool[Tensor, "batch sequence_length"] | None = None,
) -> Float[Tensor, "batch sequence_length vocab_size"]:
    """Unnormalised next-token logits at every position. `weights` uses the SPEC state-dict names.
    attention_mask (True = real token) marks a padded batch's pads, on either side; the logits at a
    row's real tokens are those of the row alone, and those at pads are not graded."""
    return dispatch(
        "run_transformer_lm",
        vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights, in_indices,
        attention_mask,
    )


@checked
def run_cross_entropy(
    inputs: Float[Tensor, "... vocab_size"],
    targets: Int[Tensor, "..."],
    ignore_index: int | None = None,
) -> Float[Tensor, ""]:
    """Mean of −log softmax(inputs)[target] over the targets that are not `ignore_index`."""
    return dispatch("run_cross_entropy", inputs, targets, ignore_index)


@checked
def run_transformer_lm_incremental(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    in_indices: Int[Tensor, "batch sequence_length"],
    chunk_sizes: Sequence[int],
    attention_mask: Bool[Tensor, "batch sequence_length"] | None = None,
) -> Float[Tensor, "batch sequence_length vocab_size"]:
    """Feed `in_indices` through ONE model in consecutive chunks using its KV cache; all logits, concatenated.
    With attention_mask (a padded batch), each chunk gets its columns of the mask."""
    if sum(chunk_sizes) != in_indices.shape[-1] or any(size < 1 for size in chunk_sizes):
        raise ValueError(
            f"chunk_sizes must be positive and add up to the sequence length {in_indices.shape[-1]}, got {list(chunk_sizes)}"
        )
    return dispatch(
        "run_transformer_lm_incremental",
        vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights, in_indices,
        list(chunk_sizes), attention_mask,
    )


@checked
def run_next_token_distribution(
    logits: Float[Tensor, "... vocab_size"],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Tensor, "... vocab_size"]:
    """Temperature, then top-k, then top-p, renormalised; temperature 0 is one-hot on the first argmax."""
    return dispatch("run_next_token_distribution", logits, temperature, top_k, top_p)


@checked
def run_generate(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    prompt: Int[Tensor, "batch prompt_length"],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    seed: int = 0,
    attention_mask: Bool[Tensor, "batch prompt_length"] | None = None,
) -> Int[Tensor, "batch total_length"]:
    """Prompt plus generated tokens, decoded with the KV cache (see SPEC §2, decoding). With
    attention_mask (a padded batch of prompts, True = real token), every row gets the tokens it
    gets alone; new tokens follow the padded prompt."""
    return dispatch(
        "run_generate",
        vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights, prompt,
        max_new_tokens, temperature, top_k, top_p, eos_token_id, seed, attention_mask,
    )


@checked
def run_perplexity(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    token_ids: Int[Tensor, "n"],
    stride: int,
) -> float:
    """Sliding-window perplexity: every token after the first scored exactly once (SPEC §2)."""
    return dispatch(
        "run_perplexity",
        vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights, token_ids, stride,
    )


# --- Training (SPEC §6). Parts marked "driven" act on live objects in the submission (parameters,
# an optimizer class, a model and a file): a trusted driver (adapters/drivers.py) builds those
# objects where the submission runs, calls the submission's CS336-named function, and returns
# what they hold afterwards.


@checked
def run_get_batch(
    dataset: Int[Tensor, "num_tokens"],
    batch_size: int,
    context_length: int,
    device: str,
    seed: int,
) -> dict:
    """Driven: the submission's run_get_batch(dataset as a np.uint16 array, batch_size, context_length,
    device) with torch and numpy seeded by `seed`. Returns {"inputs", "targets": int64 (batch_size,
    context_length) tensors (moved to the CPU), "device", "targets_device": where they were made}.
    Starts uniform over 0 … num_tokens − context_length − 1; targets = inputs shifted by one."""
    return drive("run_get_batch", dataset, batch_size, context_length, device, seed)


@checked
def run_get_batch_memmap(num_tokens: int, batch_size: int, context_length: int, seed: int) -> dict:
    """Driven: the submission's run_get_batch on a read-only np.memmap of num_tokens uint16 tokens
    (all 0) on the CPU; the same result as run_get_batch. It must read only the sampled windows."""
    return drive("run_get_batch_memmap", num_tokens, batch_size, context_length, seed)


@checked
def run_gradient_clipping(
    parameters: list[Float[Tensor, "..."]],
    grads: list[Float[Tensor, "..."] | None],
    max_l2_norm: float,
) -> dict:
    """Driven: nn.Parameters with these values and .grad (None: no gradient), passed as a generator
    to the submission's run_gradient_clipping(parameters, max_l2_norm), which clips in place.
    Returns {"parameters": values after, "grads": gradients after (None stays None)}."""
    return drive("run_gradient_clipping", parameters, grads, max_l2_norm)


@checked
def run_adamw(
    parameters: list[Float[Tensor, "..."]],
    groups: list[dict] | None,
    defaults: dict,
    grads: list[list[Float[Tensor, "..."] | None]],
    lrs: list[float] | None = None,
    reload_after: int | None = None,
) -> list[list[Float[Tensor, "..."]]]:
    """Driven: the class from the submission's get_adamw_cls(), built as cls(params or groups,
    **defaults) (groups: dicts of "params" (indices into parameters) and their own hyperparameters),
    stepped once per entry of grads (grads[s][i]: parameter i's gradient at step s, None for none),
    with every group's lr set to lrs[s] first if lrs is given, and the state_dict carried through
    torch.save/load into a new optimizer after step `reload_after`. Returns the parameters after
    every step. Compared with torch.optim.AdamW driven the same way."""
    return drive("run_adamw", parameters, groups, defaults, grads, lrs, reload_after)


@checked
def run_get_lr_cosine_schedule(
    it: int,
    max_learning_rate: float,
    min_learning_rate: float,
    warmup_iters: int,
    cosine_cycle_iters: int,
) -> float:
    """Linear warmup to max over [0, warmup_iters), cosine to min over [warmup_iters, cosine_cycle_iters], then min."""
    return float(dispatch("run_get_lr_cosine_schedule", it, max_learning_rate, min_learning_rate, warmup_iters,
                          cosine_cycle_iters))


@checked
def run_checkpoint_resume(
    weights: dict[str, Float[Tensor, "..."]],
    inputs: Float[Tensor, "batch d_in"],
    targets: Float[Tensor, "batch d_out"],
    total_steps: int,
    resume_at: int,
    learning_rate: float,
    weight_decay: float,
    to_file: bool,
) -> dict:
    """Driven: a small net trained with the submission's AdamW for total_steps, and again with the
    submission's run_save_checkpoint after resume_at steps (to a path if to_file, else to a
    binary buffer), run_load_checkpoint into freshly built objects, and the remaining steps.
    Returns {"straight", "resumed": {"weights", "optimizer": state tensors}, "iteration": what
    load returned, "checkpoint": the saved bytes as uint8}."""
    return drive("run_checkpoint_resume", weights, inputs, targets, total_steps, resume_at, learning_rate,
                 weight_decay, to_file)


@checked
def run_train_steps(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    inputs: Int[Tensor, "batch seq"],
    targets: Int[Tensor, "batch seq"],
    num_steps: int,
    max_learning_rate: float,
    min_learning_rate: float,
    warmup_iters: int,
    cosine_cycle_iters: int,
    max_l2_norm: float,
    weight_decay: float,
    loop: str = "yours",
) -> Float[Tensor, "num_steps"]:
    """Driven: the submission's TransformerLM with these weights (build_lm), its AdamW (betas
    (0.9, 0.95), eps 1e-8), and num_steps training steps on this one batch at iterations
    0 … num_steps − 1, each by its own train_step (loop="yours": schedule, loss, clipping inside)
    or by the grader's loop over its own parts (loop="grader": the composition that decides
    whether a difference is the loop's or a part's). Returns the loss of every step."""
    if loop not in ("yours", "grader"):
        raise ValueError(f"loop must be 'yours' or 'grader', got {loop!r}")
    return drive(
        "run_train_steps",
        vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, weights, inputs, targets,
        num_steps, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters, max_l2_norm, weight_decay, loop,
    )


# --- The GPT-2 variant (SPEC §6). `<gpt2>` = vocab_size, context_length, d_model, num_layers,
# num_heads, d_ff, weights: the Llama-style model's parameters without rope_theta. `weights` are
# transformers' GPT2LMHeadModel parameters by name (named_parameters: the tied lm_head.weight is
# transformer.wte.weight; a state dict's lm_head.weight, the same values, is accepted and dropped).


def _tied(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    head = weights.get("lm_head.weight")
    if head is None:
        return weights
    embedding = weights.get("transformer.wte.weight")
    if embedding is None or head.shape != embedding.shape or not bool((head == embedding).all()):
        raise ValueError("GPT-2's lm_head.weight is tied to transformer.wte.weight: pass the same tensor, or leave it out")
    return {name: value for name, value in weights.items() if name != "lm_head.weight"}


@checked
def run_layernorm(
    d_model: int,
    eps: float,
    weight: Float[Tensor, "d_model"],
    bias: Float[Tensor, "d_model"],
    in_features: Float[Tensor, "... d_model"],
) -> Float[Tensor, "... d_model"]:
    """(x − mean(x)) / sqrt(var(x) + eps) · weight + bias over the last dim (biased variance), in at
    least float32, cast back to the input dtype."""
    return dispatch("run_layernorm", d_model, eps, weight, bias, in_features)


@checked
def run_gelu(in_features: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return dispatch("run_gelu", in_features)


@checked
def run_gpt2_lm(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    weights: dict[str, Tensor],
    in_indices: Int[Tensor, "batch sequence_length"],
    attention_mask: Bool[Tensor, "batch sequence_length"] | None = None,
) -> Float[Tensor, "batch sequence_length vocab_size"]:
    """GPT-2's logits at every position: wte + wpe(0 … seq−1) → blocks → ln_f → tied head.
    attention_mask as for run_transformer_lm."""
    return dispatch("run_gpt2_lm", vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                    _tied(weights), in_indices, attention_mask)


@checked
def run_gpt2_lm_incremental(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    weights: dict[str, Tensor],
    in_indices: Int[Tensor, "batch sequence_length"],
    chunk_sizes: Sequence[int],
    attention_mask: Bool[Tensor, "batch sequence_length"] | None = None,
) -> Float[Tensor, "batch sequence_length vocab_size"]:
    """Feed `in_indices` through ONE GPT-2 model in consecutive chunks using its KV cache (positions
    continue from the cache length); all logits, concatenated."""
    if sum(chunk_sizes) != in_indices.shape[-1] or any(size < 1 for size in chunk_sizes):
        raise ValueError(
            f"chunk_sizes must be positive and add up to the sequence length {in_indices.shape[-1]}, got {list(chunk_sizes)}"
        )
    return dispatch("run_gpt2_lm_incremental", vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                    _tied(weights), in_indices, list(chunk_sizes), attention_mask)


@checked
def run_gpt2_generate(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    weights: dict[str, Tensor],
    prompt: Int[Tensor, "batch prompt_length"],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    seed: int = 0,
    attention_mask: Bool[Tensor, "batch prompt_length"] | None = None,
) -> Int[Tensor, "batch total_length"]:
    """Your generate, run on your GPT-2 model: prompt plus generated tokens, with the KV cache."""
    return dispatch("run_gpt2_generate", vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                    _tied(weights), prompt, max_new_tokens, temperature, top_k, top_p, eos_token_id, seed,
                    attention_mask)


@checked
def run_gpt2_perplexity(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    weights: dict[str, Tensor],
    token_ids: Int[Tensor, "n"],
    stride: int,
) -> float:
    """Your sliding-window perplexity, run on your GPT-2 model (SPEC §2)."""
    return dispatch("run_gpt2_perplexity", vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                    _tied(weights), token_ids, stride)


ADAPTER_NAMES = [name for name in dir() if name.startswith("run_")]
