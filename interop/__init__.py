"""Bridges between this kit's TransformerLM and other libraries' model formats."""

from .gpt2 import config_from_gpt2
from .llama import config_from_llama, llama_to_spec, spec_to_llama

__all__ = ["config_from_gpt2", "config_from_llama", "llama_to_spec", "spec_to_llama"]
