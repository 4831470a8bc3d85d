"""A pretrained sentence encoder for CPU whose weights ship inside a registry package:
WordLlama's `l2_supercat` (MIT licence; token embeddings distilled from large language
models, 256 dimensions, averaged over the text's tokens, 16 MB). Nothing is downloaded:
the weights and the tokenizer are read from the installed `wordllama` package's own
files, never through its loader (which would fetch a missing tokenizer from a hub).

It knows words the lexicons never listed ("jammed", "called ahead"), so the linear model
can weigh what happened, not only polarity words."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

CONFIG = "l2_supercat"
DIMENSIONS = 256
WEIGHTS = f"weights/{CONFIG}_{DIMENSIONS}.safetensors"
TOKENIZER = f"tokenizers/{CONFIG}_tokenizer_config.json"


def encoder_release() -> str:
    """What the model's version covers of the encoder: its package release and weights."""
    from importlib.metadata import version

    return f"wordllama-{version('wordllama')}-{CONFIG}-{DIMENSIONS}"


@cache
def _encoder() -> Any:
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama.config import Config
    from wordllama.inference import WordLlamaInference

    package = resources.files("wordllama")
    tokenizer = Tokenizer.from_file(str(package.joinpath(TOKENIZER)))
    with safe_open(str(package.joinpath(WEIGHTS)), framework="np", device="cpu") as weights:
        embedding = weights.get_tensor("embedding.weight")
    return WordLlamaInference(embedding, Config._configurations[CONFIG], tokenizer)


def encode(texts: list[str]) -> list[list[float]]:
    """Unit-length vectors, one per text, rounded so training is reproducible."""
    if not texts:
        return []
    import numpy as np

    vectors: list[list[float]] = np.round(_encoder().embed(texts, norm=True), 5).tolist()
    return vectors
