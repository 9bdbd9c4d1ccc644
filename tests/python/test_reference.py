"""axllm-core on the simulator against the independent reference (mlx-lm),
for Qwen3, Qwen2 and Llama: greedy tokens equal, logits within bf16 noise,
for a short prompt, a prompt spanning several prefill chunks, a second turn
that reuses the cached prefix, and a generation that runs into the context
limit. Every shape group is exercised: the first-chunk group, prefill groups
with history, decode, and (past the largest prefill group) decode-fed prompts.
"""

import random

import numpy as np
import pytest

from conftest import CHUNK, CONTEXT, pack, replay
from reference import Reference

ARCHS = ["qwen3", "qwen2", "llama"]
STEPS = 32


def ids(n, seed):
    rng = random.Random(seed)
    return [rng.randrange(0, 500) for _ in range(n)]


@pytest.fixture(scope="module", params=ARCHS)
def model(request, tools, tmp_path_factory):
    ckpt, model_dir = pack(tools, tmp_path_factory.mktemp(request.param), request.param)
    return request.param, model_dir, Reference(ckpt)


def assert_logits_close(ours, theirs, where):
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    assert ours.shape == theirs.shape, where
    scale = float(np.abs(theirs).max())
    diff = float(np.abs(ours - theirs).max())
    # A wrong mask, position or cache row changes logits by O(scale);
    # bf16 rounding differences stay at a few ulps of the largest logit.
    assert diff <= 0.02 * scale + 1e-3, f"{where}: max |logit diff| {diff:.4g} vs scale {scale:.4g}"


def check_against_reference(arch, model_dir, ref, tools, prompt, steps=STEPS, context=None):
    out = replay(tools, model_dir, [
        {"kind": "session", "prompt": prompt, "steps": steps},
        {"kind": "generate", "prompt": prompt, "num_predict": steps},
    ])
    sess, gen = out["results"]
    want_tokens, want_logits = ref.greedy(prompt, steps, context=context)
    assert sess["tokens"] == want_tokens, f"{arch}: greedy tokens differ from the reference"
    for i, (a, b) in enumerate(zip(sess["logits"], want_logits)):
        assert_logits_close(a, b, f"{arch} step {i}")
    # The cache holds exactly the tokens fed through the layers.
    assert sess["cached"] == prompt + sess["tokens"][:-1]
    # The generation API gives the same tokens (stopping early only on an end token),
    # whatever the session left in the device cache.
    n = len(gen["tokens"])
    assert gen["tokens"] == sess["tokens"][:n]
    assert n == len(sess["tokens"]) or gen["reason_detail"] == "EndOfSequence"
    return sess, gen


def test_short_prompt(model, tools):
    arch, model_dir, ref = model
    prompt = ids(CHUNK - 6, 11)
    sess, _ = check_against_reference(arch, model_dir, ref, tools, prompt)
    assert len(sess["tokens"]) == STEPS and sess["fed_by_decode"] == 0


def test_prompt_spanning_chunks(model, tools):
    arch, model_dir, ref = model
    prompt = ids(3 * CHUNK - 3, 12)
    sess, _ = check_against_reference(arch, model_dir, ref, tools, prompt)
    assert len(sess["tokens"]) == STEPS


def test_second_turn_reuses_prefix(model, tools):
    arch, model_dir, ref = model
    turn1 = ids(20, 13)
    first = replay(tools, model_dir, [{"kind": "session", "prompt": turn1, "steps": 10}])["results"][0]
    turn2 = turn1 + first["tokens"] + ids(12, 14)
    out = replay(tools, model_dir, [
        {"kind": "session", "prompt": turn1, "steps": 10},
        {"kind": "session", "prompt": turn2, "steps": STEPS},
    ])
    second = out["results"][1]
    # Everything the first turn fed is reused; only the last sampled token
    # (never fed) and the new text go through the layers.
    assert second["reused"] == len(turn1) + 10 - 1
    assert second["fed"] == len(turn2) - second["reused"]
    want_tokens, want_logits = ref.greedy(turn2, STEPS)
    assert second["tokens"] == want_tokens
    for i, (a, b) in enumerate(zip(second["logits"], want_logits)):
        assert_logits_close(a, b, f"{arch} turn 2 step {i}")


def test_generation_runs_into_context_limit(model, tools):
    arch, model_dir, ref = model
    prompt = ids(90, 15)  # 80 positions by prefill groups, 10 fed through decode
    sess, gen = check_against_reference(arch, model_dir, ref, tools, prompt, steps=1000, context=CONTEXT)
    assert sess["fed_by_decode"] == 10
    assert sess["reason"] == "length"
    assert len(sess["tokens"]) == CONTEXT - len(prompt) + 1 >= STEPS
    assert len(sess["cached"]) == CONTEXT
    if gen["reason_detail"] != "EndOfSequence":
        assert gen["reason_detail"] == "ContextFull" and gen["reason"] == "length"
