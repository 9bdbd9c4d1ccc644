"""The independent reference: Apple's mlx-lm implementations of Qwen3, Qwen2,
Llama and Qwen3.5 (not ours), run on the CPU in float32, with values rounded
to bfloat16 exactly where the NPU's IO is bf16: each layer's output hidden
state, the K/V rows stored in the cache (K after RoPE, so a chunk also attends
to its own rounded rows), and the logits. What remains different from the
simulator is float32 operation order, so greedy choices agree and logits agree
to a few bf16 ulps: the comparison tests our layer loop, not bf16 noise.

Qwen3.5's linear-attention layers hand their whole state (the convolution
history and the recurrent state) across the IO boundary at every execute, in
the state's dtype (bf16 or f32): the reference rounds it there too, which is
why a Qwen3.5 prompt is fed in the same chunks the engine feeds it
(`Reference.feed(chunks)`; `greedy` feeds a prompt whole, which only holds for
models whose state is a K/V cache or f32).

Why mlx-lm: candle-transformers keeps its decoder layers private (no way to
round between layers), and torch from PyPI pulls several GB of CUDA wheels.
"""

from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_lm.models.base import create_attention_mask
from mlx_lm.models.cache import ArraysCache, KVCache
from mlx_lm.utils import load_model


def bf16(a: mx.array) -> mx.array:
    """Round to bfloat16 (round to nearest even) and back to float32."""
    return a.astype(mx.bfloat16).astype(mx.float32)


class Bf16Cache(KVCache):
    """A KV cache that stores bf16-rounded rows, as the NPU's K/V buffers do."""

    def update_and_fetch(self, keys, values):
        return super().update_and_fetch(bf16(keys), bf16(values))


class StateCache(ArraysCache):
    """A linear layer's state (convolution history, recurrent state), rounded
    to the state's dtype whenever a layer call stores it: the state as the
    card hands it from one execute to the next."""

    def __init__(self, round_state):
        super().__init__(size=2)
        self.round_state = round_state

    def __setitem__(self, idx, value):
        super().__setitem__(idx, self.round_state(value))


class Reference:
    def __init__(self, checkpoint: Path, state_dtype="bf16"):
        self.model, self.config = load_model(Path(checkpoint))
        self.model.set_dtype(mx.float32)
        self.inner = self.model.model
        # Qwen3.5 nests the text model; its lm_head and arguments live there.
        self.text = getattr(self.model, "language_model", self.model)
        self.round_state = bf16 if state_dtype == "bf16" else (lambda a: a.astype(mx.float32))

    def new_cache(self):
        return [StateCache(self.round_state) if getattr(l, "is_linear", False) else Bf16Cache() for l in self.inner.layers]

    def layers(self, tokens, cache) -> mx.array:
        """Feeds tokens after what `cache` holds, as one execute per layer;
        returns the last layer's output (bf16-rounded), before the final norm."""
        h = self.inner.embed_tokens(mx.array([list(tokens)]))
        full = next(i for i, l in enumerate(self.inner.layers) if not getattr(l, "is_linear", False))
        mask = create_attention_mask(h, cache[full])
        for layer, c in zip(self.inner.layers, cache):
            h = bf16(layer(h, None if getattr(layer, "is_linear", False) else mask, c))
        return h

    def last_hidden(self, tokens) -> np.ndarray:
        """The last token's final hidden state for `tokens` fed whole: what a
        generative model's embedding pools (last token, no final norm)."""
        h = self.layers(tokens, self.new_cache())[0, -1]
        mx.eval(h)
        return np.array(h)

    def forward(self, tokens, cache) -> np.ndarray:
        """Feeds tokens after what `cache` holds, as one execute per layer;
        returns the last position's logits."""
        h = self.layers(tokens, cache)
        h = self.inner.norm(h[:, -1:, :])
        if getattr(self.text.args, "tie_word_embeddings", False):
            logits = self.inner.embed_tokens.as_linear(h)
        else:
            logits = self.text.lm_head(h)
        out = bf16(logits)[0, -1]
        mx.eval(out)
        return np.array(out)

    def feed(self, chunks, cache):
        """Feeds each chunk as one execute; returns the last chunk's logits."""
        logits = None
        for chunk in chunks:
            logits = self.forward(chunk, cache)
        return logits

    def follow(self, chunks, tokens, cache=None):
        """The logits before each of `tokens` when the prompt is fed in
        `chunks` and then `tokens` one by one (all but the last), i.e. the
        reference run along the engine's own choices (teacher forcing)."""
        cache = cache if cache is not None else self.new_cache()
        out = [self.feed(chunks, cache)]
        for t in tokens[:-1]:
            out.append(self.forward([t], cache))
        return out

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
