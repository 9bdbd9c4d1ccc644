"""axllm-core on the simulator against the independent reference (mlx-lm's
qwen3_5) for a hybrid Qwen3.5 model: Gated DeltaNet layers whose state the
engine carries on the card from execute to execute, and gated full-attention
layers. Greedy tokens equal and logits within bf16 noise for a padded first
chunk, prompts over several chunks, a second turn that continues the state, a
second turn that diverges and restarts from a snapshot, a generation that
fills the context; then the same for an awkward package (f32 state reported
as NONE, pruned linear groups, no layer kinds in config.json), and the
simulator's open behaviours (padded rows, indices, unwritten outputs) against
the engine's settings for them.

The reference rounds the linear layers' state to its dtype at every execute,
so it is fed in the chunks the engine feeds (`plan` mirrors the engine's group
choice, and every test checks the engine reports the same feed).
"""

import json
import random

import numpy as np
import pytest

from conftest import CHUNK, CONTEXT, HISTORY, pack_qwen35, replay, run, sim_env
from reference import Reference
from test_reference import assert_logits_close

STEPS = 24


def ids(n, seed):
    rng = random.Random(seed)
    return [rng.randrange(0, 500) for _ in range(n)]


def feed_plan(start, end, min_rows=1):
    """The engine's feed of positions [start, end) as (tokens, through decode):
    the first prefill group that holds the history and a chunk of up to CHUNK
    tokens, else (past the largest group, or a chunk below `min_rows`) one
    token through the decode group."""
    groups = [(0, CHUNK)] + [(h, h + CHUNK) for h in HISTORY]
    steps, pos = [], start
    while pos < end:
        want = min(end - pos, CHUNK)
        fits = any(pos <= h and pos + want <= min(t, CONTEXT) for h, t in groups)
        n, by_decode = (want, False) if fits and want >= min_rows else (1, True)
        steps.append((n, by_decode))
        pos += n
    return steps


def plan(start, end, min_rows=1):
    """The sizes of the engine's executes for positions [start, end)."""
    return [n for n, _ in feed_plan(start, end, min_rows)]


def split(tokens, sizes):
    out, pos = [], 0
    for n in sizes:
        out.append(tokens[pos:pos + n])
        pos += n
    assert pos == len(tokens)
    return out


@pytest.fixture(scope="module")
def qwen35(tools, tmp_path_factory):
    ckpt, model_dir = pack_qwen35(tools, tmp_path_factory.mktemp("qwen35"))
    return model_dir, Reference(ckpt, state_dtype="bf16"), ckpt


def check_session(sess, ref, chunks, where, cache=None):
    """The engine's greedy run against the reference run along the engine's
    own tokens (teacher forcing, so one near-tie cannot derail the rest):
    every step's logits within bf16 noise, and every chosen token the
    reference's first maximum, or within that noise of it (a near-tie that
    float order decides; at most one in ten steps)."""
    want_logits = ref.follow(chunks, sess["tokens"], cache)
    ties = 0
    for i, (ours, theirs, token) in enumerate(zip(sess["logits"], want_logits, sess["tokens"])):
        assert_logits_close(ours, theirs, f"{where} step {i}")
        best = int(np.argmax(theirs))
        if token != best:
            tolerance = 0.02 * float(np.abs(theirs).max()) + 1e-3
            gap = float(theirs[best] - theirs[token])
            assert gap <= tolerance, f"{where} step {i}: token {token}, the reference's {best} leads by {gap:.4g}"
            ties += 1
    assert ties <= max(1, len(sess["tokens"]) // 10), f"{where}: {ties} near-ties in {len(sess['tokens'])} steps"


def run_prompt(tools, model_dir, ref, prompt, steps=STEPS, env=None, load=None, min_rows=1):
    """Runs `prompt` through a session and the generation API; checks the
    session against the reference, fed in the engine's chunks."""
    out = replay(tools, model_dir, [
        {"kind": "session", "prompt": prompt, "steps": steps},
        {"kind": "generate", "prompt": prompt, "num_predict": steps},
    ], env=env, load=load)
    sess, gen = out["results"]
    steps_fed = feed_plan(0, len(prompt), min_rows)
    assert sess["fed"] == len(prompt) and sess["fed_by_decode"] == sum(n for n, d in steps_fed if d)
    chunks = split(prompt, [n for n, _ in steps_fed])
    check_session(sess, ref, chunks, f"{len(prompt)}-token prompt")
    n = len(gen["tokens"])
    assert gen["tokens"] == sess["tokens"][:n], "the generation API takes the same tokens"
    assert n == len(sess["tokens"]) or gen["reason_detail"] == "EndOfSequence"
    return out, sess, gen, chunks


def test_short_prompt_in_one_padded_chunk(qwen35, tools):
    model_dir, ref, _ = qwen35
    out, _, _, _ = run_prompt(tools, model_dir, ref, ids(CHUNK - 6, 21))
    assert out["linear_layers"] == 5 and out["snapshot_slots"] == 8


def test_prompt_spanning_chunks(qwen35, tools):
    model_dir, ref, _ = qwen35
    prompt = ids(3 * CHUNK - 3, 22)
    _, sess, _, _ = run_prompt(tools, model_dir, ref, prompt)
    # A snapshot at every chunk end; the last one is the prompt's end.
    assert sess["snapshots"] == [CHUNK, 2 * CHUNK, len(prompt)]


def test_second_turn_continues_the_state(qwen35, tools):
    model_dir, ref, _ = qwen35
    turn1 = ids(20, 23)
    first = replay(tools, model_dir, [{"kind": "session", "prompt": turn1, "steps": 10}])["results"][0]
    turn2 = turn1 + first["tokens"] + ids(12, 24)
    out = replay(tools, model_dir, [
        {"kind": "session", "prompt": turn1, "steps": 10},
        {"kind": "session", "prompt": turn2, "steps": STEPS},
    ])
    second = out["results"][1]
    cached = len(turn1) + 10 - 1
    assert second["reused"] == cached and second["restored"] is None, "the state on the card is continued"
    assert out["results"][0]["tokens"] == first["tokens"]
    cache = ref.new_cache()
    ref.follow(split(turn1, plan(0, len(turn1))), first["tokens"], cache)
    check_session(second, ref, split(turn2[cached:], plan(cached, len(turn2))), "turn 2", cache)


def test_diverging_turn_restarts_from_a_snapshot(qwen35, tools):
    model_dir, ref, _ = qwen35
    turn1 = ids(40, 25)
    turn2 = turn1[:35] + ids(10, 26)
    assert turn2[35] != turn1[35] and ids(12, 27)[0] != turn2[0]
    out = replay(tools, model_dir, [
        {"kind": "session", "prompt": turn1, "steps": 6},
        {"kind": "session", "prompt": turn2, "steps": STEPS},
        {"kind": "session", "prompt": ids(12, 27), "steps": 4},
    ])
    first, second, third = out["results"]
    assert first["snapshots"] == [16, 32, 40]
    # The longest snapshot within the 35 shared tokens is the chunk end at 32.
    assert (second["restored"], second["reused"]) == (32, 32)
    assert second["snapshots"] == [16, 32, 45], "snapshots past 32 dropped, the new prompt end added"
    assert (third["restored"], third["reused"]) == (None, 0), "nothing shared: the state starts empty"
    assert third["snapshots"] == [12]
    # The reference: the state after turn 1's first two chunks, then turn 2's rest in the engine's chunks.
    cache = ref.new_cache()
    ref.feed(split(turn1[:32], plan(0, 32)), cache)
    check_session(second, ref, split(turn2[32:], plan(32, len(turn2))), "restored turn 2", cache)
    check_session(third, ref, split(ids(12, 27), plan(0, 12)), "after a reset to the empty state")


def test_generation_fills_the_context(qwen35, tools):
    model_dir, ref, _ = qwen35
    prompt = ids(90, 28)  # 80 positions by prefill groups, 10 fed through decode
    _, sess, gen, _ = run_prompt(tools, model_dir, ref, prompt, steps=1000)
    assert sess["fed_by_decode"] == 10
    assert sess["reason"] == "length" and len(sess["cached"]) == CONTEXT
    assert len(sess["tokens"]) == CONTEXT - len(prompt) + 1
    if gen["reason_detail"] != "EndOfSequence":
        assert gen["reason_detail"] == "ContextFull"


def test_an_awkward_package_gives_the_same_tokens(qwen35, tools, tmp_path):
    """f32 state the runtime reports as NONE, linear layers pruned to one
    prefill group, and no layer kinds in config.json (told apart by their IO)."""
    _, _, ckpt = qwen35
    _, model_dir = pack_qwen35(tools, ckpt.parent, name="awkward", extra=[
        "--state-dtype", "f32", "--state-dtype-none", "--linear-prefill-groups", "1", "--layer-keys", "none"])
    ref = Reference(ckpt, state_dtype="f32")
    for seed, n in [(31, 11), (32, 2 * CHUNK + 5)]:
        out, _, _, _ = run_prompt(tools, model_dir, ref, ids(n, seed))
        assert out["snapshot_bytes"] == 5 * (3 * 128 + 4 * 16 * 16) * 4, "f32 state, sized by bytes"


def test_the_engine_does_not_depend_on_indices_in_linear_layers(qwen35, tools):
    model_dir, ref, _ = qwen35
    env = sim_env(tools, {"AXCL_SIM_CONFIG": "linear_indices=check"})
    run_prompt(tools, model_dir, ref, ids(2 * CHUNK + 7, 33), env=env)


def test_padded_rows_that_change_the_state_need_the_setting(qwen35, tools):
    """If a card's linear layers let padding rows decay the state, the
    vendor's assumption breaks the output; `padded_rows_keep_state: false`
    feeds the prompt's last, partial chunk through decode and is exact."""
    model_dir, ref, _ = qwen35
    env = sim_env(tools, {"AXCL_SIM_CONFIG": "linear_padding=decay"})
    prompt = ids(CHUNK + 9, 34)
    wrong = replay(tools, model_dir, [{"kind": "session", "prompt": prompt, "steps": 4}], env=env)["results"][0]
    out = replay(tools, model_dir, [{"kind": "session", "prompt": prompt, "steps": STEPS}], env=env,
                 load={"padded_rows_keep_state": False})
    sess = out["results"][0]
    assert sess["fed_by_decode"] == 9
    chunks = split(prompt, [CHUNK] + [1] * 9)
    check_session(sess, ref, chunks, "padding decays, tail through decode")
    # The prompt's last row comes before the padding: its logits are right;
    # the decayed state shows from the first generated token on.
    want = ref.follow(chunks, wrong["tokens"])
    diff = max(np.abs(np.asarray(a) - b).max() for a, b in zip(wrong["logits"][1:], want[1:]))
    assert diff > 0.05 * np.abs(want[1]).max(), "a decayed state must show in the logits"


def test_chunks_that_leave_output_unwritten_need_the_setting(qwen35, tools):
    """A card whose chunk groups write no `output` below 8 valid rows
    (hardware-facts: F23, scaled to this chunk of 16): `min_chunk_rows: 8` feeds
    such chunks through decode and is exact."""
    model_dir, ref, _ = qwen35
    env = sim_env(tools, {"AXCL_SIM_CONFIG": "min_output_rows=8"})
    prompt = ids(CHUNK + 5, 35)
    wrong = replay(tools, model_dir, [{"kind": "session", "prompt": prompt, "steps": 2}], env=env)["results"][0]
    out = replay(tools, model_dir, [{"kind": "session", "prompt": prompt, "steps": STEPS}], env=env,
                 load={"min_chunk_rows": 8})
    sess = out["results"][0]
    assert sess["fed_by_decode"] == 5
    check_session(sess, ref, split(prompt, plan(0, len(prompt), min_rows=8)), "unwritten outputs, tail through decode")
    want = ref.follow(split(prompt, plan(0, len(prompt))), wrong["tokens"])
    diff = np.abs(np.asarray(wrong["logits"][0]) - want[0]).max()
    assert diff > 0.05 * np.abs(want[0]).max(), "a stale output must show in the logits"


def conform(tools, model_dir, config=""):
    res = run([tools["conform"], model_dir, "--json"], env=sim_env(tools, {"AXCL_SIM_CONFIG": config}))
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_conformance_kit_reports_what_the_runtime_does(qwen35, tools):
    """examples/conform measures the contract's open facts; on the simulator
    it must find exactly the behaviour the simulator is configured with (on a
    card, what the card does)."""
    model_dir, _, ckpt = qwen35
    default = conform(tools, model_dir)
    lin, full = default["linear_layer"], default["full_layer"]
    assert (default["layer_kinds_from"], lin["index"], full["index"]) == ("config.json", 0, 3)
    assert lin["io"]["K_cache"] == {"dims": [1, 3, 128], "dtype": "bf16", "bytes": 768}
    assert lin["io"]["mask"] == [1, 16, 16, 16, 16], "a gate of one element per row"
    p = lin["probes"]
    assert p["indices"]["verdict"] == "ignored"
    assert p["padding"]["verdict"] == "keeps the state", p["padding"]
    assert p["prefill_groups_agree"] is True
    assert p["output_rows"]["fewest_rows_written"] == 1
    assert full["probes"]["output_rows"]["fewest_rows_written"] == 1
    other = conform(tools, model_dir, "linear_indices=check;linear_padding=decay;min_output_rows=8")
    p = other["linear_layer"]["probes"]
    assert p["indices"]["verdict"] == "read"
    assert p["padding"]["verdict"] == "changes the state", p["padding"]
    assert p["output_rows"]["fewest_rows_written"] == 8
    assert other["full_layer"]["probes"]["output_rows"]["fewest_rows_written"] == 8
    _, awkward = pack_qwen35(tools, ckpt.parent, name="awkward", extra=[
        "--state-dtype", "f32", "--state-dtype-none", "--linear-prefill-groups", "1", "--layer-keys", "none"])
    report = conform(tools, awkward)
    assert report["layer_kinds_from"] == "IO"
    assert report["linear_layer"]["io"]["V_cache"]["dtype"] == "none" and report["linear_layer"]["io"]["groups"] == 2
    assert report["linear_layer"]["probes"]["padding"]["verdict"] == "keeps the state"
