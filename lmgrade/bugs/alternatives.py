"""Correct implementations written differently: each must keep full marks on the items it touches."""

from ..variants import alternative

ALTERNATIVES = [
    alternative("matmul_instead_of_einsum", "Linear as x @ W.T instead of an einsum", ("linear", "swiglu", "attention", "lm"),
                ("layers.py", 'return einx.dot("... d_in, d_out d_in -> ... d_out", x, self.weight)', "return x @ self.weight.T")),
    alternative("fused_qkv_projection", "one matmul with the stacked [Wq; Wk; Wv] instead of three projections", ("attention", "block", "lm", "kv_cache"),
                ("attention.py", "q, k, v = split_heads(self.q_proj(x)), split_heads(self.k_proj(x)), split_heads(self.v_proj(x))",
                 "qkv = x @ torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]).T\n"
                 "        q, k, v = (split_heads(t) for t in qkv.chunk(3, dim=-1))")),
    alternative("complex_number_rope", "RoPE as multiplication by e^{iθ} on complex numbers", ("rope", "attention", "lm", "kv_cache"),
                ("attention.py", "pairs = x.unflatten(-1, (-1, 2))  # (... seq, d_k/2, 2): dims (2k, 2k+1) side by side\n"
                 "        even, odd = pairs[..., 0], pairs[..., 1]\n"
                 "        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)\n"
                 "        return rotated.flatten(-2)",
                 "z = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())\n"
                 "        return torch.view_as_real(z * torch.complex(cos, sin)).flatten(-2)")),
    alternative("concatenating_cache", "a KV cache that grows with torch.cat instead of preallocated buffers", ("kv_cache",),
                ("attention.py", "        if self.keys is None:\n"
                 "            buffer_shape = (*k.shape[:-2], self.max_seq_len, k.shape[-1])\n"
                 "            self.keys = k.new_empty(buffer_shape)\n"
                 "            self.values = v.new_empty(buffer_shape)\n"
                 "        self.keys[..., self.length : end, :] = k\n"
                 "        self.values[..., self.length : end, :] = v\n"
                 "        self.length = end\n"
                 "        return self.keys[..., :end, :], self.values[..., :end, :]",
                 "        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=-2)\n"
                 "        self.values = v if self.values is None else torch.cat([self.values, v], dim=-2)\n"
                 "        self.length = end\n"
                 "        return self.keys, self.values")),
]
