"""The independent reference: Apple's mlx-lm implementations of Qwen3, Qwen2
and Llama (not ours), run on the CPU in float32, with values rounded to
bfloat16 exactly where the NPU's IO is bf16: each layer's output hidden state,
the K/V rows stored in the cache (K after RoPE, so a chunk also attends to its
own rounded rows), and the logits. What remains different from the simulator
is float32 operation order, so greedy choices agree and logits agree to a few
bf16 ulps: the comparison tests our layer loop, not bf16 noise.

Why mlx-lm: candle-transformers keeps its decoder layers private (no way to
round between layers), and torch from PyPI pulls several GB of CUDA wheels.
"""

from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_lm.models.base import create_attention_mask
from mlx_lm.models.cache import KVCache
from mlx_lm.utils import load_model


def bf16(a: mx.array) -> mx.array:
    """Round to bfloat16 (round to nearest even) and back to float32."""
    return a.astype(mx.bfloat16).astype(mx.float32)


class Bf16Cache(KVCache):
    """A KV cache that stores bf16-rounded rows, as the NPU's K/V buffers do."""

    def update_and_fetch(self, keys, values):
        return super().update_and_fetch(bf16(keys), bf16(values))


class Reference:
    def __init__(self, checkpoint: Path):
        self.model, self.config = load_model(Path(checkpoint))
        self.model.set_dtype(mx.float32)
        self.inner = self.model.model

    def new_cache(self):
        return [Bf16Cache() for _ in self.inner.layers]

    def forward(self, tokens, cache) -> np.ndarray:
        """Feeds tokens after what `cache` holds; returns the last position's logits."""
        h = self.inner.embed_tokens(mx.array([list(tokens)]))
        mask = create_attention_mask(h, cache[0])
        for layer, c in zip(self.inner.layers, cache):
            h = bf16(layer(h, mask, c))
        h = self.inner.norm(h[:, -1:, :])
        if getattr(self.model.args, "tie_word_embeddings", False):
            logits = self.inner.embed_tokens.as_linear(h)
        else:
            logits = self.model.lm_head(h)
        out = bf16(logits)[0, -1]
        mx.eval(out)
        return np.array(out)

    def greedy(self, prompt, steps, context=None, stop=None):
        """Greedy decoding: (tokens, logits per step). With `context`, stops
        when the next token would not fit (the NPU's context limit); with
        `stop`, after that token (an end of answer)."""
        cache = self.new_cache()
        logits = self.forward(prompt, cache)
        tokens, all_logits = [], []
        fed = len(prompt)
        for _ in range(steps):
            t = int(np.argmax(logits))  # first maximum, like axllm
            tokens.append(t)
            all_logits.append(logits)
            if len(tokens) == steps or t == stop or (context is not None and fed >= context):
                break
            logits = self.forward([t], cache)
            fed += 1
        return tokens, all_logits
