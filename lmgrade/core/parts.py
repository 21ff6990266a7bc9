"""The graded operations ("parts") of the assignment: one canonical adapter each, and the rubric
component that grades it.

The recipe for a new part `run_X` (selftests/test_recipe.py checks every place for every part,
and names what is missing):

1. `student/`: the stub(s) the adapter builds (functions or classes), each with a docstring
   that states the contract, raising NotImplementedError.
2. `reference/`: the same names, implemented.
3. `adapters/signatures.py`: `run_X`, typed with jaxtyping (checked by beartype), docstring =
   contract; `adapters/package.py`: `PackageAdapters.run_X`, building the student's objects.
   A part whose CS336 adapter takes live objects (parameters, an optimizer class, a model and a
   file) is *driven*: `run_X` takes plain tensors, and a driver in `adapters/drivers.py`
   (DRIVERS, DRIVEN_ON) builds the objects where the submission runs and calls the CS336-named
   functions, which PackageAdapters defines instead.
4. Here: `PARTS["run_X"] = Part(component, tolerance_row, cs336)`.
5. `lmgrade/core/rubric.toml`: an item `<component>` (visible tests) and usually
   `<component>.hidden`; `lmgrade/core/rubric_cs336.toml`: the same items when CS336 asks for it
   (`cs336=True`), else a line in its `not_counted`.
6. `tests/test_<component>.py`: the tests that call `run_X`, and the file's `HINT` (what a
   failure usually means, and a question to ask yourself), shown to students with failures.
7. `tests/tolerances.py`: the float32 row `tolerance_row`, with its reason.
8. `lmgrade/catalogue/bugs/`: at least one realistic mistake whose item is `<component>`.
9. `lmgrade/sandbox/policy.toml`: where torch has a function that does the part's job
   (torch.nn.functional.<X>), it is forbidden (or allowed for this item on purpose).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    component: str  # the rubric item that grades it (and whose bugs can explain its wrong output)
    tolerance_row: str | None  # its float32 row in tests/tolerances.py; None: compared exactly (token ids)
    cs336: bool  # CS336's assignment 1 asks for it (rubric_cs336.toml grades it)


PARTS: dict[str, Part] = {
    "run_linear": Part("linear", "linear", cs336=True),
    "run_embedding": Part("embedding", "embedding", cs336=True),
    "run_rmsnorm": Part("rmsnorm", "rmsnorm", cs336=True),
    "run_silu": Part("swiglu", "silu", cs336=True),
    "run_swiglu": Part("swiglu", "swiglu", cs336=True),
    "run_softmax": Part("softmax", "softmax", cs336=True),
    "run_scaled_dot_product_attention": Part("attention", "attention", cs336=True),
    "run_rope": Part("rope", "rope", cs336=True),
    "run_multihead_self_attention": Part("attention", "attention", cs336=True),
    "run_multihead_self_attention_with_rope": Part("attention", "attention", cs336=True),
    "run_transformer_block": Part("block", "block", cs336=True),
    "run_transformer_lm": Part("lm", "lm", cs336=True),
    "run_transformer_lm_incremental": Part("kv_cache", "kv_cache", cs336=False),
    "run_cross_entropy": Part("cross_entropy", "cross_entropy", cs336=True),
    "run_next_token_distribution": Part("decoding", "decoding", cs336=False),
    "run_generate": Part("generate", None, cs336=False),
    "run_perplexity": Part("perplexity", "perplexity", cs336=False),
    # Training (SPEC §6). Driven parts (adapters/drivers.py) build live objects beside the submission.
    "run_get_batch": Part("get_batch", None, cs336=True),
    "run_get_batch_memmap": Part("get_batch", None, cs336=True),
    "run_gradient_clipping": Part("gradient_clipping", "gradient_clipping", cs336=True),
    "run_adamw": Part("adamw", "adamw", cs336=True),
    "run_get_lr_cosine_schedule": Part("lr_schedule", "lr_schedule", cs336=True),
    "run_checkpoint_resume": Part("checkpoint", None, cs336=True),
    "run_train_steps": Part("training", "training", cs336=False),
    # The GPT-2 variant (SPEC §6).
    "run_layernorm": Part("layernorm", "layernorm", cs336=False),
    "run_gelu": Part("gelu", "gelu", cs336=False),
    "run_gpt2_lm": Part("gpt2_lm", "gpt2_lm", cs336=False),
    "run_gpt2_lm_incremental": Part("gpt2_kv_cache", "gpt2_kv_cache", cs336=False),
    "run_gpt2_generate": Part("gpt2_decoding", None, cs336=False),
    "run_gpt2_perplexity": Part("gpt2_decoding", "perplexity", cs336=False),
}

# The rubric component whose bugs can explain a wrong output of each adapter.
COMPONENT_OF: dict[str, str] = {adapter: part.component for adapter, part in PARTS.items()}
