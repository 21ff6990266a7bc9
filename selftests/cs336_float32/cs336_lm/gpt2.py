"""GPT-2 variant: learned absolute positions, LayerNorm with bias, biased Conv1D-layout projections,
tanh-GELU MLP, tied LM head. Parameter names follow transformers' GPT2LMHeadModel state dict (minus lm_head)."""

import math

import einx
import torch
from torch import Tensor, nn

from .decoding import next_token_distribution
from .layers import Embedding, LayerKVCache, scaled_dot_product_attention


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased variance), in >= float32."""
    # x: (..., d_model) -> (..., d_model)
    in_dtype = x.dtype
    compute = torch.promote_types(in_dtype, torch.float32)
    x = x.to(compute)
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    centered = x - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)  # (..., 1)
    out = centered * torch.rsqrt(var + eps) * weight.to(compute) + bias.to(compute)
    return out.to(in_dtype)


def gelu_tanh(x: Tensor) -> Tensor:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class LayerNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(d_model, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)


class Conv1D(nn.Module):
    """GPT-2's affine layer: y = x W + b with weight stored as (in_features, out_features)."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        # x: (..., d_in) -> (..., d_out)
        return einx.dot("... d_in, d_in d_out -> ... d_out", x, self.weight) + self.bias


class GPT2Attention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, device=None, dtype=None):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_model = d_model
        self.num_heads = num_heads
        self.c_attn = Conv1D(d_model, 3 * d_model, device=device, dtype=dtype)
        self.c_proj = Conv1D(d_model, d_model, device=device, dtype=dtype)

    def forward(self, x: Tensor, mask: Tensor, kv_cache: LayerKVCache | None = None) -> Tensor:
        # x: (batch, seq, d_model); mask: (batch, 1, seq, past + seq) bool, True = may attend
        qkv = self.c_attn(x)  # (batch, seq, 3 d_model): q | k | v
        q, k, v = qkv.split(self.d_model, dim=-1)
        q = einx.id("... s (h d) -> ... h s d", q, h=self.num_heads)  # (batch, h, seq, d_head)
        k = einx.id("... s (h d) -> ... h s d", k, h=self.num_heads)
        v = einx.id("... s (h d) -> ... h s d", v, h=self.num_heads)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (batch, h, past + seq, d_head)
        out = scaled_dot_product_attention(q, k, v, mask)  # (batch, h, seq, d_head)
        return self.c_proj(einx.id("... h s d -> ... s (h d)", out))


class GPT2MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.c_fc = Conv1D(d_model, d_ff, device=device, dtype=dtype)
        self.c_proj = Conv1D(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(gelu_tanh(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.ln_1 = LayerNorm(d_model, eps, device=device, dtype=dtype)
        self.attn = GPT2Attention(d_model, num_heads, device=device, dtype=dtype)
        self.ln_2 = LayerNorm(d_model, eps, device=device, dtype=dtype)
        self.mlp = GPT2MLP(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor, mask: Tensor, kv_cache: LayerKVCache | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, kv_cache)
        return x + self.mlp(self.ln_2(x))


class GPT2Cache:
    """Per-layer keys/values plus, per row, which cached positions are real tokens and how many there are."""

    def __init__(self, num_layers: int):
        self.layers = [LayerKVCache() for _ in range(num_layers)]
        self.key_mask: Tensor | None = None  # (batch, past) bool
        self.real_count: Tensor | None = None  # (batch,) long

    def __len__(self) -> int:
        return len(self.layers[0])


class GPT2Model(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.wte = Embedding(vocab_size, d_model, device=device, dtype=dtype)
        self.wpe = Embedding(context_length, d_model, device=device, dtype=dtype)
        self.h = nn.ModuleList(GPT2Block(d_model, num_heads, d_ff, eps, device=device, dtype=dtype)
                               for _ in range(num_layers))
        self.ln_f = LayerNorm(d_model, eps, device=device, dtype=dtype)


class GPT2LM(nn.Module):
    """Parameters: transformer.{wte,wpe,h.i.*,ln_f}.*; the LM head is tied to transformer.wte.weight."""

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.context_length = context_length
        self.transformer = GPT2Model(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, eps,
                                     device=device, dtype=dtype)

    def new_cache(self) -> GPT2Cache:
        return GPT2Cache(len(self.transformer.h))

    def forward(self, in_indices: Tensor, kv_cache: GPT2Cache | None = None,
                attention_mask: Tensor | None = None) -> Tensor:
        # in_indices: (batch, seq) [or (seq,)]; attention_mask: same shape, True = real token.
        squeeze = in_indices.dim() == 1
        if squeeze:
            in_indices = in_indices[None]
            attention_mask = None if attention_mask is None else attention_mask[None]
        batch, seq = in_indices.shape
        device = in_indices.device
        past = 0 if kv_cache is None else len(kv_cache)
        if past + seq > self.context_length:
            raise ValueError(f"{past + seq} positions exceed context_length={self.context_length}")

        new_mask = (torch.ones(batch, seq, dtype=torch.bool, device=device) if attention_mask is None
                    else attention_mask.to(device=device, dtype=torch.bool))  # (batch, seq)
        if kv_cache is not None and kv_cache.key_mask is not None:
            old_mask, old_count = kv_cache.key_mask, kv_cache.real_count
        else:
            old_mask = torch.ones(batch, past, dtype=torch.bool, device=device)
            old_count = torch.full((batch,), past, dtype=torch.long, device=device)
        # a real token's position = number of real tokens before it in its row; pads get a clamped dummy
        positions = old_count[:, None] + torch.cumsum(new_mask.long(), dim=-1) - 1  # (batch, seq)
        positions = positions.clamp(0, self.context_length - 1)
        key_mask = torch.cat((old_mask, new_mask), dim=-1)  # (batch, past + seq)

        qi = torch.arange(seq, device=device)[:, None] + past  # absolute index of each query
        kj = torch.arange(past + seq, device=device)[None, :]
        causal = kj <= qi  # (seq, past + seq)
        # pads are never keys; each query may always see itself so a pad row has no empty softmax
        mask = (causal & key_mask[:, None, :]) | (kj == qi)  # (batch, seq, past + seq)
        mask = mask[:, None]  # (batch, 1, seq, past + seq): same for every head

        t = self.transformer
        x = t.wte(in_indices) + t.wpe(positions)  # (batch, seq, d_model)
        for i, block in enumerate(t.h):
            x = block(x, mask, None if kv_cache is None else kv_cache.layers[i])
        x = t.ln_f(x)
        logits = einx.dot("... d, v d -> ... v", x, t.wte.weight)  # tied head: (batch, seq, vocab)

        if kv_cache is not None:
            kv_cache.key_mask = key_mask
            kv_cache.real_count = old_count + new_mask.long().sum(dim=-1)
        return logits[0] if squeeze else logits


@torch.no_grad()
def generate_gpt2(model, prompt: Tensor, max_new_tokens: int, temperature: float = 0.0,
                  top_k: int | None = None, top_p: float | None = None, eos_token_id: int | None = None,
                  seed: int = 0, attention_mask: Tensor | None = None) -> Tensor:
    """prompt: (batch, prompt_len) -> (batch, prompt_len + generated). With attention_mask (True = real),
    each row continues from its last real token; the new tokens are appended after the whole prompt."""
    if prompt.shape[-1] + max_new_tokens > model.context_length:
        raise ValueError("prompt_length + max_new_tokens exceeds context_length")
    g = torch.Generator(prompt.device).manual_seed(seed)
    cache = model.new_cache()
    tokens = prompt
    finished = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)  # (batch,)
    for step in range(max_new_tokens):
        if step == 0:
            logits = model(prompt, kv_cache=cache, attention_mask=attention_mask)  # (batch, P, vocab)
            if attention_mask is None:
                logits = logits[:, -1, :]
            else:
                m = attention_mask.to(device=prompt.device, dtype=torch.bool)
                last_real = m.shape[-1] - 1 - m.flip(-1).long().argmax(dim=-1)  # (batch,)
                logits = logits[torch.arange(prompt.shape[0], device=prompt.device), last_real]
        else:
            logits = model(tokens[:, -1:], kv_cache=cache)[:, -1, :]  # (batch, vocab)
        probs = next_token_distribution(logits, temperature, top_k, top_p)
        new = torch.multinomial(probs, 1, generator=g)  # (batch, 1)
        if eos_token_id is not None:
            new = new.masked_fill(finished[:, None], eos_token_id)
            finished |= new[:, 0] == eos_token_id
        tokens = torch.cat((tokens, new), dim=-1)
        if eos_token_id is not None and bool(finished.all()):
            break
    return tokens
