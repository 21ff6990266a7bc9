"""GPT-2 interop: transformers' GPT2LMHeadModel weights load unchanged into the reference GPT2LM.

Tiny, seeded, randomly initialised GPT-2s built locally (nothing is downloaded), in float32 (what
students write), compared within the float32 table's gpt2_lm row (tests/tolerances.py).
"""

import pytest

transformers = pytest.importorskip("transformers", reason="the GPT-2 interop needs the optional extra: pip install -e '.[gpt2]'")

import torch  # noqa: E402

import reference  # noqa: E402
from interop import config_from_gpt2  # noqa: E402
from tests.tolerances import tolerance  # noqa: E402

pytestmark = pytest.mark.xdist_group("test_gpt2_interop")

PROMPT_LEN, NEW_TOKENS = 6, 14
ROW = tolerance("gpt2_lm", torch.float32)
CONFIGS = {  # (vocab, positions, width, layers, heads)
    "2_layers_4_heads": (97, 32, 32, 2, 4),
    "3_layers_2_heads": (61, 24, 24, 3, 2),
}


def tiny_gpt2(vocab, positions, width, layers, heads, seed=0):
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=layers, n_head=heads,
                                     bos_token_id=None, eos_token_id=None, pad_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    # GPT-2's init (std 0.02, LayerNorm exactly 1 and 0, zero biases) gives flat logits that would not notice
    # a bias dropped or ln_1/ln_2 swapped: redraw every weight so each one matters.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2:
                param.normal_(0.0, 0.5 if "wte" in name or "wpe" in name else param.shape[0] ** -0.5)
            elif name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.2)
    return model


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def models(request):
    hf = tiny_gpt2(*CONFIGS[request.param])
    ours = reference.GPT2LM(reference.GPT2Config(**config_from_gpt2(hf.config))).eval()
    ours.load_state_dict(hf.state_dict())  # strict: every name and shape of GPT2LMHeadModel, unchanged
    return hf, ours


@pytest.fixture(scope="module")
def prompt(models):
    vocab = models[0].config.vocab_size
    return torch.randint(0, vocab, (2, PROMPT_LEN), generator=torch.Generator().manual_seed(1))


def assert_within_row(ours, theirs, what):
    scale = float(theirs.abs().max())
    error = float((ours - theirs).abs().max())
    assert error <= ROW.atol * scale + ROW.rtol * scale, f"{what}: max |ours − transformers| = {error:.3g} (logits up to {scale:.3g})"


def test_the_state_dict_of_gpt2lmheadmodel_is_exactly_ours(models):
    hf, ours = models
    theirs = hf.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert all(ours.state_dict()[name].shape == weight.shape for name, weight in theirs.items())


def test_the_tied_head_is_one_tensor_in_both_models(models):
    hf, ours = models
    assert ours.lm_head.weight is ours.transformer.wte.weight
    assert "lm_head.weight" not in dict(ours.named_parameters())  # one parameter, listed once, as transformers lists it
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()


@torch.no_grad()
def test_logits_equal_transformers_within_the_float32_row(models, prompt):
    hf, ours = models
    tokens = torch.cat([prompt, prompt.flip(-1)], dim=-1)
    assert_within_row(ours(tokens), hf(tokens).logits, "logits")


@torch.no_grad()
def test_logits_fed_through_the_kv_cache_equal_transformers_full_forward(models, prompt):
    """A prefill, then multi-token chunks and single tokens: positions (wpe rows) continue from the cache."""
    hf, ours = models
    tokens = torch.cat([prompt, prompt.flip(-1)], dim=-1)
    cache, chunks, start = ours.make_kv_cache(), [], 0
    for size in (5, 3, 1, 1, 2):
        chunks.append(ours(tokens[:, start : start + size], kv_cache=cache))
        start += size
    assert_within_row(torch.cat(chunks, dim=1), hf(tokens).logits, "cached logits")


@torch.no_grad()
def test_greedy_generation_with_the_kv_cache_equals_transformers_generate(models, prompt):
    hf, ours = models
    got = reference.generate(ours, prompt, NEW_TOKENS)
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS, do_sample=False)
    assert torch.equal(got, theirs), f"ours:\n{got.tolist()}\ntransformers:\n{theirs.tolist()}"


@torch.no_grad()
def test_left_padded_logits_at_real_tokens_equal_transformers_with_counted_positions(models, prompt):
    """transformers' GPT-2 takes position_ids as given (counted over the pads unless told): with positions
    counted over the real tokens, as the SPEC counts them, the logits at real tokens agree."""
    hf, ours = models
    mask = torch.arange(PROMPT_LEN)[None, :] >= torch.tensor([0, 3])[:, None]
    ids = torch.where(mask, prompt, 0)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    theirs = hf(ids, attention_mask=mask.long(), position_ids=positions).logits
    assert_within_row(ours(ids, attention_mask=mask)[mask], theirs[mask], "left-padded logits")


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(activation_function="gelu"), "activation_function"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
    (dict(tie_word_embeddings=False), "untied"),
    (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
])
def test_config_from_gpt2_rejects_what_the_kit_cannot_express_with_a_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_from_gpt2(transformers.GPT2Config(n_embd=16, n_head=2, **overrides))
