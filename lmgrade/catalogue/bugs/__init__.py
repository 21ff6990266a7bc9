"""The catalogue: common bugs (each must lose its own item) and valid alternatives (full marks).

Instructor-only: the edits quote reference code, so the handout never contains this package.
"""

from .alternatives import ALTERNATIVES
from .decoding import BUGS as DECODING_BUGS
from .gpt2 import BUGS as GPT2_BUGS
from .model import BUGS as MODEL_BUGS
from .padding import BUGS as PADDING_BUGS
from .training import BUGS as TRAINING_BUGS

BUGS = [*MODEL_BUGS, *DECODING_BUGS, *PADDING_BUGS, *TRAINING_BUGS, *GPT2_BUGS]
CATALOGUE = [*BUGS, *ALTERNATIVES]
