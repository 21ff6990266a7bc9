"""interop.llama: HF LlamaForCausalLM weights <-> the reference TransformerLM.

Everything runs on a tiny, seeded, randomly initialised Llama; nothing is downloaded.
"""

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402

import reference  # noqa: E402
from interop import config_from_llama, llama_to_spec, spec_to_llama  # noqa: E402

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("test_llama_interop")

NUM_HEADS = 4
PROMPT_LEN, NEW_TOKENS = 7, 16


def tiny_llama_config(**overrides) -> "transformers.LlamaConfig":
    settings = dict(
        vocab_size=97,
        hidden_size=32,  # 4 heads of d_head = 8
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=100.0,  # not the default, and small enough that the rotations are large
        tie_word_embeddings=False,
        attn_implementation="eager",
        bos_token_id=None,
        eos_token_id=None,  # so that generate() never stops early
        pad_token_id=None,
    )
    settings.update(overrides)
    return transformers.LlamaConfig(**settings)


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(tiny_llama_config()).to(torch.float64).eval()
    # HF's init (std 0.02, norm gains exactly 1) gives nearly flat logits and would not notice
    # ln1/ln2 being swapped; redraw so every weight matters and the argmax is well separated.
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2:
                param.normal_(0.0, param.shape[1] ** -0.5)
            else:
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def ref_model(hf_model):
    config = reference.TransformerConfig(**config_from_llama(hf_model.config))
    model = reference.TransformerLM(config, dtype=torch.float64).eval()
    model.load_state_dict(llama_to_spec(hf_model.state_dict(), NUM_HEADS))  # strict: names and shapes match
    return model


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(0, 97, (2, PROMPT_LEN), generator=torch.Generator().manual_seed(1))


def test_llama_to_spec_to_llama_round_trip_is_exactly_the_identity(hf_model):
    original = hf_model.state_dict()
    back = spec_to_llama(llama_to_spec(original, NUM_HEADS), NUM_HEADS)
    assert back.keys() == original.keys()
    for name, weight in original.items():
        assert torch.equal(back[name], weight), name


def test_spec_to_llama_to_spec_round_trip_is_exactly_the_identity(ref_model):
    original = ref_model.state_dict()
    back = llama_to_spec(spec_to_llama(original, NUM_HEADS), NUM_HEADS)
    assert back.keys() == original.keys()
    for name, weight in original.items():
        assert torch.equal(back[name], weight), name


@torch.no_grad()
def test_reference_logits_equal_transformers_logits_for_converted_weights(hf_model, ref_model, prompt):
    tokens = torch.cat([prompt, prompt.flip(-1)], dim=-1)  # 14 positions: RoPE angles up to 13 rad
    ours = ref_model(tokens)
    theirs = hf_model(tokens).logits
    assert ours.dtype == theirs.dtype == torch.float64
    # Not 1e-10, though both models hold float64 weights: transformers' Llama computes its RoPE
    # cos/sin tables, the RMSNorm statistics and the attention softmax in float32 whatever the
    # model dtype, so it is only float32-accurate (observed gap ~1e-6 on logits of size ~3).
    # The reference stays in float64. A wrong permutation, a swapped weight or a wrong theta
    # moves the logits by O(0.1..1), five orders of magnitude above this tolerance.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def reference_greedy(model, prompt, new_tokens):
    """Greedy decoding with the KV cache: feed the prompt once, then one token at a time."""
    cache = model.make_kv_cache()
    tokens = prompt
    logits = model(prompt, kv_cache=cache)
    for _ in range(new_tokens):
        next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=-1)
        logits = model(next_token, kv_cache=cache)
    return tokens


@torch.no_grad()
def test_reference_greedy_generation_with_kv_cache_equals_transformers_generate(hf_model, ref_model, prompt):
    ours = reference_greedy(ref_model, prompt, NEW_TOKENS)
    attention_mask = torch.ones_like(prompt)
    theirs = hf_model.generate(prompt, attention_mask=attention_mask, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert ours.shape == (2, PROMPT_LEN + NEW_TOKENS)
    assert torch.equal(ours, theirs)


def left_padded(prompt: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row b keeps its last lengths[b] tokens, left-padded with id 0 (never read), and the mask."""
    mask = torch.arange(prompt.shape[1])[None, :] >= (prompt.shape[1] - torch.tensor(lengths))[:, None]
    return torch.where(mask, prompt, 0), mask


@pytest.fixture(scope="module")
def float32_models(hf_model, ref_model):
    """Both models in float32 for the padded batches: transformers 5.25's eager Llama in float64 turns a
    left-padded row into NaN (its float64 mask value overflows to −inf on a pad's all-masked row, and the
    NaN reaches the real tokens), a bug of its own; in float32 it is right."""
    import copy

    return copy.deepcopy(hf_model).float(), copy.deepcopy(ref_model).float()


@torch.no_grad()
def test_left_padded_batch_logits_at_real_tokens_equal_transformers(float32_models, prompt):
    """A left-padded batch with attention_mask: the same logits at every real token. transformers' forward
    takes position_ids as given (it counts them over the pads by default), so they are passed counted over
    the real tokens, as its generate does."""
    hf_model, ref_model = float32_models
    ids, mask = left_padded(prompt, [PROMPT_LEN, 3])
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    ours = ref_model(ids, attention_mask=mask)
    theirs = hf_model(ids, attention_mask=mask.long(), position_ids=positions).logits
    torch.testing.assert_close(ours[mask], theirs[mask], rtol=0, atol=1e-4)


@torch.no_grad()
def test_left_padded_greedy_generation_equals_transformers_generate(float32_models, prompt):
    hf_model, ref_model = float32_models
    ids, mask = left_padded(prompt, [PROMPT_LEN, 2])
    ours = reference.generate(ref_model, ids, NEW_TOKENS, attention_mask=mask)
    theirs = hf_model.generate(ids, attention_mask=mask.long(), max_new_tokens=NEW_TOKENS, do_sample=False)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(num_key_value_heads=2), "grouped-query attention"),
        (dict(attention_bias=True), "bias"),
        (dict(tie_word_embeddings=True), "tied"),
        (dict(rms_norm_eps=1e-6), "rms_norm_eps"),
    ],
)
def test_config_from_llama_rejects_unsupported_configs_with_a_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_from_llama(tiny_llama_config(**overrides))


def test_llama_to_spec_rejects_grouped_query_attention_weights():
    torch.manual_seed(0)
    gqa = transformers.LlamaForCausalLM(tiny_llama_config(num_key_value_heads=2))
    with pytest.raises(ValueError, match="grouped-query attention"):
        llama_to_spec(gqa.state_dict(), NUM_HEADS)
