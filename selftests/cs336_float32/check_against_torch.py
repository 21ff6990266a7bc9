"""Self-check: compare the cs336_lm pieces with torch's own functions (float32) and run every adapter once.

Run: python check_against_torch.py   (exits non-zero on the first failure)
"""

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F

spec = importlib.util.spec_from_file_location("cs336_float32_adapters", Path(__file__).parent / "adapters.py")
A = importlib.util.module_from_spec(spec)
spec.loader.exec_module(A)
import cs336_lm  # noqa: E402  (made importable by adapters.py)

torch.manual_seed(0)  # the module initialisers below use the global RNG
g = torch.Generator().manual_seed(0)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def check(name, got, want, atol=1e-5, rtol=1e-5):
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    err = (got - want).abs().max().item() if got.numel() else 0.0
    assert torch.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True), f"{name}: max abs err {err:.3g}"
    print(f"ok  {name:<44} max abs err {err:.2e}")


def rope_complex(x, pos, theta):  # x: (..., s, d); pairs (2k, 2k+1) as complex numbers
    d = x.shape[-1]
    freqs = pos[..., None].double() * theta ** (-torch.arange(0, d, 2).double() / d)  # (..., s, d/2)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(freqs), freqs)).flatten(-2).float()


# --- elementary pieces -------------------------------------------------------------------------
x = randn(2, 3, 5, 7)
for dim in (0, 1, -1):
    check(f"softmax dim={dim}", A.run_softmax(x, dim), F.softmax(x, dim=dim))
check("softmax shifted by +1000", A.run_softmax(x + 1000, -1), F.softmax(x, dim=-1))
check("silu", A.run_silu(x), F.silu(x))
W = randn(4, 7)
check("linear (transposed input)", A.run_linear(7, 4, W, x.transpose(0, 1)), x.transpose(0, 1) @ W.T)
E, ids = randn(11, 6), torch.randint(0, 11, (3, 4), generator=g)
check("embedding", A.run_embedding(11, 6, E, ids), F.embedding(ids, E))
gain = randn(7)
check("rmsnorm", A.run_rmsnorm(7, 1e-5, gain, x), F.rms_norm(x, (7,), gain, eps=1e-5))
w1, w2, w3 = randn(9, 7), randn(7, 9), randn(9, 7)
check("swiglu", A.run_swiglu(7, 9, w1, w2, w3, x), (F.silu(x @ w1.T) * (x @ w3.T)) @ w2.T)

Q, K, V = randn(2, 3, 5, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 4)
mask = torch.rand(5, 6, generator=g) > 0.4
mask[:, 0] = True  # every query row has at least one key
check("sdpa with bool mask", A.run_scaled_dot_product_attention(Q, K, V, mask),
      F.scaled_dot_product_attention(Q, K, V, attn_mask=mask))
check("sdpa without mask", A.run_scaled_dot_product_attention(Q, K, V), F.scaled_dot_product_attention(Q, K, V))

pos = torch.randint(0, 32, (2, 5), generator=g)
q = randn(2, 5, 8)
check("rope vs complex rotation", A.run_rope(8, 10000.0, 32, q, pos), rope_complex(q, pos, 10000.0), atol=1e-4)

# --- cross-entropy ---------------------------------------------------------------------------------
logits, targets = randn(3, 4, 10, scale=3.0), torch.randint(0, 10, (3, 4), generator=g)
targets[0, 1] = targets[2, 3] = -100
check("cross_entropy ignore_index=-100", A.run_cross_entropy(logits, targets, -100),
      F.cross_entropy(logits.reshape(-1, 10), targets.reshape(-1), ignore_index=-100))
check("cross_entropy logits x1000", A.run_cross_entropy(logits * 1000, targets, -100),
      F.cross_entropy(logits.reshape(-1, 10) * 1000, targets.reshape(-1), ignore_index=-100), rtol=1e-4)
t_ok = targets.clamp(min=0)
check("cross_entropy no ignore_index", A.run_cross_entropy(logits, t_ok),
      F.cross_entropy(logits.reshape(-1, 10), t_ok.reshape(-1)))
leaf = logits.clone().requires_grad_()
A.run_cross_entropy(leaf, targets, -100).backward()
assert (leaf.grad[0, 1] == 0).all() and (leaf.grad[2, 3] == 0).all(), "gradient at ignored rows must be 0"
assert A.run_cross_entropy(logits, torch.full((3, 4), 5), 5).isnan(), "all ignored must give NaN"
print("ok  cross_entropy: zero grad at ignored rows, NaN when all ignored")

# --- attention, block, LM ----------------------------------------------------------------------------
d_model, heads, d_ff, vocab, ctx, layers, theta = 16, 4, 24, 50, 32, 2, 10000.0
lm_args = (vocab, ctx, d_model, layers, heads, d_ff, theta)
weights = cs336_lm.TransformerLM(*lm_args).state_dict()
xs = randn(2, 9, d_model)
wq, wk, wv, wo = (weights[f"layers.0.attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj", "output_proj"))


def torch_mha(x, positions=None):
    def heads_of(w):  # (b, s, d_model) -> (b, h, s, d_head)
        return (x @ w.T).unflatten(-1, (heads, -1)).transpose(1, 2)
    q_, k_, v_ = heads_of(wq), heads_of(wk), heads_of(wv)
    if positions is not None:
        q_, k_ = rope_complex(q_, positions, theta), rope_complex(k_, positions, theta)
    out = F.scaled_dot_product_attention(q_, k_, v_, is_causal=True)
    return out.transpose(1, 2).flatten(-2) @ wo.T


check("mha (no rope)", A.run_multihead_self_attention(d_model, heads, wq, wk, wv, wo, xs), torch_mha(xs))
check("mha with rope, default positions",
      A.run_multihead_self_attention_with_rope(d_model, heads, ctx, theta, wq, wk, wv, wo, xs),
      torch_mha(xs, torch.arange(9)), atol=1e-4)
block_w = {k.removeprefix("layers.0."): v for k, v in weights.items() if k.startswith("layers.0.")}
h = xs + torch_mha(F.rms_norm(xs, (d_model,), block_w["ln1.weight"], eps=1e-5), torch.arange(9))
hn = F.rms_norm(h, (d_model,), block_w["ln2.weight"], eps=1e-5)
want = h + (F.silu(hn @ block_w["ffn.w1.weight"].T) * (hn @ block_w["ffn.w3.weight"].T)) @ block_w["ffn.w2.weight"].T
check("transformer block", A.run_transformer_block(d_model, heads, d_ff, ctx, theta, block_w, xs), want, atol=1e-4)

tokens = torch.randint(0, vocab, (2, 12), generator=g)
full = A.run_transformer_lm(*lm_args, weights, tokens)
assert full.shape == (2, 12, vocab) and full.dtype == torch.float32
changed = tokens.clone()
changed[:, 7:] = (changed[:, 7:] + 1) % vocab
assert torch.equal(A.run_transformer_lm(*lm_args, weights, changed)[:, :7], full[:, :7]), "not causal"
print("ok  transformer_lm shape/dtype and causality")
for chunks in ([12], [5, 1, 1, 5], [1] * 12, [3, 4, 5]):
    check(f"incremental {chunks}", A.run_transformer_lm_incremental(*lm_args, weights, tokens, chunks), full, atol=1e-4)

# --- decoding, generation, perplexity -------------------------------------------------------------------
ntd = A.run_next_token_distribution
check("temperature 0: first argmax", ntd(torch.tensor([1.0, 3.0, 3.0, 0.0]), 0.0), torch.tensor([0.0, 1.0, 0.0, 0.0]))
check("top_k=2 ties go to lower id", ntd(torch.tensor([3.0, 1.0, 3.0, 3.0]), 1.0, top_k=2),
      torch.tensor([0.5, 0.0, 0.5, 0.0]))
lg = torch.tensor([0.5, 0.25, 0.125, 0.125]).log()
check("top_p=0.75 reached exactly stops there", ntd(lg, 1.0, top_p=0.75), torch.tensor([2 / 3, 1 / 3, 0.0, 0.0]))
check("top_p tiny keeps the top token", ntd(lg, 1.0, top_p=1e-3), torch.tensor([1.0, 0.0, 0.0, 0.0]))
check("temperature 2, top_k 3, top_p 0.9", ntd(lg, 2.0, top_k=3, top_p=0.9).sum(-1), torch.tensor(1.0))

lm = cs336_lm.TransformerLM(*lm_args)
lm.load_state_dict(weights)
prompt = tokens[:, :4]
greedy = A.run_generate(*lm_args, weights, prompt, 8)
ref = prompt
with torch.no_grad():
    for _ in range(8):  # greedy without a cache: re-run the whole prefix
        ref = torch.cat((ref, lm(ref)[:, -1].argmax(-1, keepdim=True)), dim=-1)
assert torch.equal(greedy, ref), "greedy with cache != greedy without cache"
s1 = A.run_generate(*lm_args, weights, prompt, 8, temperature=1.0, top_k=10, top_p=0.9, seed=3)
assert torch.equal(s1, A.run_generate(*lm_args, weights, prompt, 8, temperature=1.0, top_k=10, top_p=0.9, seed=3))
eos = int(greedy[0, 4])
with_eos = A.run_generate(*lm_args, weights, prompt, 8, eos_token_id=eos)
assert (with_eos[0, 4:] == eos).all() and with_eos.shape[1] <= 12
try:
    A.run_generate(*lm_args, weights, prompt, ctx - 3)
    raise AssertionError("expected ValueError")
except ValueError:
    pass
print("ok  generate: greedy cached == uncached, seeded, eos, ValueError")

seq = torch.randint(0, vocab, (75,), generator=g)
for stride in (1, 7, 16, ctx):
    nll, count = 0.0, 0
    with torch.no_grad():
        for t in range(1, 75):  # brute force: target t scored by the first window that has it as a target
            begin = next(b for b in range(0, 74, stride) if b < t <= b + ctx)
            window = seq[begin:min(begin + ctx, 74)]  # inputs; the window predicts seq[begin + 1:...]
            logp = torch.log_softmax(lm(window[None])[0, t - begin - 1].double(), -1)
            nll -= logp[seq[t]].item()
            count += 1
    got = A.run_perplexity(*lm_args, weights, seq, stride)
    assert math.isclose(got, math.exp(nll / count), rel_tol=1e-5), (stride, got, math.exp(nll / count))
    print(f"ok  perplexity stride={stride:<3} {got:.4f}")
print("ALL CHECKS PASSED")
