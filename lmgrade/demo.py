"""See the whole job end to end: a tiny Transformer LM continues a prompt and scores a sequence.

    python -m lmgrade.demo                                   # your student/ package, random weights
    python -m lmgrade.demo --impl reference                  # the instructors' reference
    python -m lmgrade.demo --prompt 5,17,3 --max-new-tokens 12 --temperature 0.8 --top-k 10 --top-p 0.9
    python -m lmgrade.demo --weights my_model.safetensors --num-heads 4 --context-length 256

Random weights are drawn from --seed, so two implementations given the same options see the
same model: a correct student package prints exactly what the reference prints. With
--weights, the state dict (SPEC key names; a .safetensors file, or a .pt file read with
weights_only=True) fixes vocab_size, d_model, d_ff and num_layers; num_heads, context_length
and rope_theta cannot be read off the weights and come from the options.

A part that is still a stub is reported as "not implemented yet", and the rest carries on.
"""

from __future__ import annotations

import argparse
import importlib
import math
import re
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

TINY = dict(vocab_size=64, context_length=32, d_model=32, num_layers=2, num_heads=4, d_ff=64, rope_theta=10000.0)


class DemoError(Exception):
    """A problem with the options or the weights: printed as one line, no traceback."""


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in re.split(r"[,\s]+", text.strip()) if part]
    except ValueError:
        raise DemoError(f"token ids must be integers separated by commas, got {text!r}") from None
    if not ids:
        raise DemoError("the prompt needs at least one token id")
    return ids


def random_weights(config: dict, seed: int) -> dict[str, Tensor]:
    """Seeded float32 weights under the SPEC names, scaled so that activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    d, f, vocab = config["d_model"], config["d_ff"], config["vocab_size"]

    def normal(*shape: int, std: float) -> Tensor:
        return torch.randn(shape, generator=g) * std

    weights = {"token_embeddings.weight": normal(vocab, d, std=1.0)}
    for i in range(config["num_layers"]):
        p = f"layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "output_proj"):
            weights[f"{p}attn.{name}.weight"] = normal(d, d, std=d**-0.5)
        weights[f"{p}ln1.weight"] = torch.ones(d)
        weights[f"{p}ffn.w1.weight"] = normal(f, d, std=d**-0.5)
        weights[f"{p}ffn.w2.weight"] = normal(d, f, std=f**-0.5)
        weights[f"{p}ffn.w3.weight"] = normal(f, d, std=d**-0.5)
        weights[f"{p}ln2.weight"] = torch.ones(d)
    weights["ln_final.weight"] = torch.ones(d)
    # A larger output scale than a freshly initialised model: the continuation has some character.
    weights["lm_head.weight"] = normal(vocab, d, std=3 * d**-0.5)
    return weights


def load_weights(path: str) -> dict[str, Tensor]:
    file = Path(path)
    if not file.is_file():
        raise DemoError(f"no such weights file: {path}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:
            raise DemoError(f"could not read {path} with torch.load(weights_only=True): {error}") from None
    # A training checkpoint often nests the model's state dict ({"model": ..., "optimizer": ...}).
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DemoError(f"{path} does not hold a state dict of tensors")
    # torch.compile wraps the model: its keys start with "_orig_mod.".
    return {key.removeprefix("_orig_mod."): value.float() for key, value in state.items()}


def config_from_weights(weights: dict[str, Tensor], options: argparse.Namespace) -> dict:
    try:
        vocab_size, d_model = weights["token_embeddings.weight"].shape
        d_ff = weights["layers.0.ffn.w1.weight"].shape[0]
    except KeyError as missing:
        raise DemoError(f"the weights have no {missing} entry: are they under the SPEC state-dict names?") from None
    num_layers = len({key.split(".")[1] for key in weights if key.startswith("layers.")})
    if d_model % options.num_heads:
        raise DemoError(f"d_model={d_model} is not divisible by --num-heads {options.num_heads}")
    return dict(vocab_size=int(vocab_size), context_length=options.context_length or 256, d_model=int(d_model),
                num_layers=num_layers, num_heads=options.num_heads, d_ff=int(d_ff), rope_theta=options.rope_theta)


def import_implementation(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if name == "reference":
            raise DemoError("the reference implementation is not part of the student handout: use --impl student") from None
        raise DemoError(f"could not import the {name} package: {error}") from None


def step(title: str, action):
    """Run one part of the demo; a stub (NotImplementedError) prints a friendly line instead of a traceback."""
    try:
        return action()
    except NotImplementedError as error:
        what = str(error) or "a function this step needs"
        print(f"{title}: not implemented yet: {what}")
    except (ValueError, RuntimeError, TypeError, IndexError) as error:
        print(f"{title}: failed with {type(error).__name__}: {error}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmgrade.demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["student", "reference"], default="student", help="which package runs (default: student)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and of sampling (default 0)")
    parser.add_argument("--prompt", default="1,2,3", help="prompt token ids, comma-separated (default 1,2,3)")
    parser.add_argument("--max-new-tokens", type=int, default=10, help="tokens to generate (default 10)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature for the sampled continuation (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="keep only the k most probable tokens when sampling")
    parser.add_argument("--top-p", type=float, default=None, help="keep the smallest most-probable set of mass ≥ p when sampling")
    parser.add_argument("--eos", type=int, default=None, help="end-of-sequence token id: a row stops once it produced it")
    parser.add_argument("--stride", type=int, default=None, help="perplexity window stride (default: half the context)")
    parser.add_argument("--weights", default=None, help="a state dict (.safetensors, or .pt read with weights_only=True)")
    parser.add_argument("--num-heads", type=int, default=TINY["num_heads"], help="heads, with --weights (default 4)")
    parser.add_argument("--context-length", type=int, default=None, help="context length (default 32, or 256 with --weights)")
    parser.add_argument("--rope-theta", type=float, default=TINY["rope_theta"], help="RoPE θ, with --weights (default 10000)")
    options = parser.parse_args(argv)
    try:
        return run(options)
    except DemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(options: argparse.Namespace) -> int:
    pkg = import_implementation(options.impl)
    if options.weights:
        weights = load_weights(options.weights)
        config = config_from_weights(weights, options)
        origin = f"weights from {options.weights}"
    else:
        config = dict(TINY, context_length=options.context_length or TINY["context_length"])
        weights = random_weights(config, options.seed)
        origin = f"random weights (seed {options.seed})"
    prompt_ids = parse_ids(options.prompt)
    if max(prompt_ids) >= config["vocab_size"] or min(prompt_ids) < 0:
        raise DemoError(f"prompt token ids must be in [0, {config['vocab_size']})")
    room = config["context_length"] - len(prompt_ids)
    if room < 0:
        raise DemoError(f"the prompt has {len(prompt_ids)} tokens, more than the context length {config['context_length']}")
    new_tokens = max(0, min(options.max_new_tokens, room))
    settings = ", ".join(f"{k}={v}" for k, v in config.items())
    print(f"{options.impl} TransformerLM({settings})\n{origin}\n")
    if options.max_new_tokens > room:
        print(f"(--max-new-tokens {options.max_new_tokens} does not fit in the context of {config['context_length']} "
              f"after {len(prompt_ids)} prompt tokens: generating {room})")

    def build():
        model = pkg.TransformerLM(pkg.TransformerConfig(**config))
        model.load_state_dict(weights)
        return model.eval()

    model = step("building the model", build)
    if model is None:
        print(f"(implement it in {options.impl}/, then run pytest to compare it with the reference)")
        return 1
    prompt = torch.tensor([prompt_ids])
    print(f"prompt:   {prompt_ids}")

    def show(title: str, tokens: Tensor) -> list[int]:
        ids = tokens[0].tolist()
        print(f"{title} {ids[:len(prompt_ids)]} + {ids[len(prompt_ids):]}")
        return ids

    greedy = step("greedy decoding", lambda: show(
        "greedy:  ", pkg.generate(model, prompt, new_tokens, temperature=0.0, eos_token_id=options.eos, seed=options.seed)))
    sampled_title = f"sampled (T={options.temperature}, top_k={options.top_k}, top_p={options.top_p}, seed={options.seed}):"
    step("sampling", lambda: show(sampled_title + "\n         ", pkg.generate(
        model, prompt, new_tokens, temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
        eos_token_id=options.eos, seed=options.seed)))

    def next_token():
        with torch.no_grad():
            logits = model(prompt)[0, -1]
        probs = pkg.next_token_distribution(logits, options.temperature, options.top_k, options.top_p)
        top = torch.topk(probs, k=min(5, len(probs)))
        pairs = ", ".join(f"{int(i)}: {float(p):.3f}" for p, i in zip(top.values, top.indices))
        print(f"next-token distribution after the prompt, most probable first: {pairs}")

    print()
    step("next-token distribution", next_token)

    stride = min(options.stride or max(1, config["context_length"] // 2), config["context_length"])
    g = torch.Generator().manual_seed(options.seed + 1)
    random_sequence = torch.randint(0, config["vocab_size"], (2 * config["context_length"] + 5,), generator=g)

    def perplexities():
        scores = {}
        if greedy is not None and len(greedy) >= 2:
            scores[f"the greedy continuation ({len(greedy)} tokens)"] = pkg.perplexity(model, torch.tensor(greedy), stride)
        scores[f"{len(random_sequence)} random tokens"] = pkg.perplexity(model, random_sequence, stride)
        print(f"perplexity (stride {stride}; a uniform guess over the vocabulary scores {config['vocab_size']}):")
        width = max(len(name) for name in scores)
        for name, ppl in scores.items():
            print(f"  of {name.ljust(width)}  {ppl:10.3f}" + ("  (not finite!)" if not math.isfinite(ppl) else ""))
        if len(scores) == 2:
            own, noise = scores.values()
            print("  (the model finds its own greedy choices " + ("more" if own < noise else "no more") + " likely than noise)")

    step("perplexity", perplexities)
    return 0


if __name__ == "__main__":
    sys.exit(main())
