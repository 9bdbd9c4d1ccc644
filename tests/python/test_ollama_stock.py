"""What a stock Ollama user keeps, and the API bugs real clients hit, end to
end through the patched `ollama serve` on the simulator: a GGUF model
(SmolLM2-135M, run by the llama-server the build produces) beside an AX650
model in one server; options refused or accepted as upstream does; every
embedding route; /v1/completions on a thinking model; the compiled context
in `show` and for num_ctx; the package's sampling defaults in the library and
in Ollama; `create` refusing broken packages and bad requests; the build
replacing a binary that is serving."""

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest

from conftest import CONTEXT, ROOT, Server, pack, replay, run

GGUF = ROOT / "target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("stock")


@pytest.fixture(scope="module")
def model_dir(tools, work):
    _, m = pack(tools, work, "qwen3", seed=21)
    return m


@pytest.fixture(scope="module")
def server(ollama_bin, tools, work, model_dir):
    assert GGUF.exists(), f"{GGUF} is missing: scripts/setup.sh downloads it"
    s = Server(ollama_bin, tools, work / "srv")
    s.create("tiny", model_dir)
    mf = work / "Modelfile-smol"
    mf.write_text(f"FROM {GGUF}\n")
    s.cli("create", "smol", "-f", str(mf), timeout=600)
    yield s
    s.stop()


def test_version(ollama_bin):
    out = subprocess.run([str(ollama_bin), "--version"], capture_output=True, text=True)
    assert "0.34.4-ax650" in out.stdout + out.stderr


def test_gguf_and_ax650_models_in_one_server(server):
    client = ollama.Client(host=server.url)
    smol = client.chat(model="smol", messages=[{"role": "user", "content": "What is the capital of France?"}],
                       options=GREEDY)
    assert smol.message.content.strip(), smol
    assert smol.eval_count >= 1 and smol.done_reason in ("stop", "length")
    tiny = client.chat(model="tiny", messages=[{"role": "user", "content": "Hello"}], think=False, options=GREEDY)
    assert tiny.message.content and tiny.eval_count >= 1
    ps = server.cli("ps").stdout
    assert "smol" in ps and "tiny" in ps, ps
    # Both answer again with the other one loaded.
    again = client.chat(model="smol", messages=[{"role": "user", "content": "What is the capital of France?"}],
                        options=GREEDY)
    assert again.message.content == smol.message.content
    # GGUF embeddings are upstream's: SmolLM2 is a chat model (no pooling
    # type), so llama-server runs without --embedding and says so, not our
    # AX650 refusal.
    r = server.post("/api/embed", {"model": "smol", "input": "hello"})
    assert "does not support embeddings" in r.text and "AX650" not in r.text, r.text


def test_gguf_created_from_a_file_is_stored_as_upstream_stores_it(server):
    show = server.post("/api/show", {"model": "smol"}).json()
    assert show["details"]["format"] == "gguf" and show["details"]["family"] == "llama"
    assert show["model_info"]["llama.context_length"] == 8192


def test_every_embedding_route_serves_ax650_models(server):
    """Beside GGUF models (which keep upstream's refusal above), an AX650
    model answers every embedding route: one unit vector per input, the same
    on each route to bf16 precision."""
    r = server.post("/api/embed", {"model": "tiny", "input": ["hello", "world"]})
    assert r.status_code == 200, r.text
    first, second = (np.asarray(v, np.float64) for v in r.json()["embeddings"])
    assert len(first) == len(second) > 0 and abs(np.linalg.norm(first) - 1) < 1e-4
    r = server.post("/api/embeddings", {"model": "tiny", "prompt": "hello"})
    assert r.status_code == 200, r.text
    legacy = np.asarray(r.json()["embedding"], np.float64)
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    v1 = np.asarray(oa.embeddings.create(model="tiny", input="hello").data[0].embedding, np.float64)
    for v in (legacy, v1):
        assert v.shape == first.shape and float(v @ first) > 0.9999, float(v @ first)
    official = ollama.Client(host=server.url).embed(model="tiny", input="hello")
    assert float(np.asarray(official.embeddings[0], np.float64) @ first) > 0.9999


def test_options_are_refused_and_accepted_as_upstream_does(server):
    def generate(model, options=None, raw_body=None):
        if raw_body is not None:
            return httpx.post(server.url + "/api/generate", content=raw_body, timeout=120,
                              headers={"Content-Type": "application/json"})
        return server.post("/api/generate", {"model": model, "prompt": "hi", "stream": False,
                                             "options": {"num_predict": 2, **(options or {})}})
    for model in ("smol", "tiny"):
        r = generate(model, {"typical_p": 0.5})
        assert r.status_code == 400 and r.json()["error"] == "typical_p is no longer supported", (model, r.text)
        r = generate(model, {"draft_num_predict": 4})
        assert r.status_code == 200 and r.json()["eval_count"] == 2, (model, r.text)
    # Whatever upstream does with a body followed by garbage, it does for both.
    statuses = {m: generate(m, raw_body=json.dumps({"model": m, "prompt": "hi", "stream": False,
                                                    "options": {"num_predict": 2}}) + " trailing").status_code
                for m in ("smol", "tiny")}
    assert statuses["smol"] == statuses["tiny"], statuses
    # Refused by the Modelfile too, for both.
    mf = Path(server.log_path).parent / "Modelfile-typical"
    for base in ("smol", "tiny"):
        mf.write_text(f"FROM {base}\nPARAMETER typical_p 0.5\n")
        out = server.cli("create", f"{base}-typical", "-f", str(mf), check=False)
        assert out.returncode != 0 and "typical_p is no longer supported" in out.stderr, out


def generate_text(server, body):
    r = server.post("/api/generate", {"model": "tiny", "stream": False, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_v1_completions_answer_text_and_thinking_off(server):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    prompt = "Once upon a time"
    plain = generate_text(server, {"prompt": prompt, "think": False, "options": {"temperature": 0, "num_predict": 10}})
    assert plain["response"] and not plain.get("thinking")
    for extra in ({"reasoning_effort": "none"}, {"think": False}, {"reasoning": {"effort": "none"}}):
        comp = oa.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=10, extra_body=extra)
        assert comp.choices[0].text == plain["response"], extra
        streamed = "".join(c.choices[0].text for c in oa.completions.create(
            model="tiny", prompt=prompt, temperature=0, max_tokens=10, stream=True, extra_body=extra) if c.choices)
        assert streamed == plain["response"], extra
    # By default the model thinks (as upstream's thinking models do there): the
    # text is the answer after the thinking, never the thinking itself.
    think = generate_text(server, {"prompt": prompt, "options": {"temperature": 0, "num_predict": 10}})
    comp = oa.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=10)
    assert comp.choices[0].text == think["response"]
    assert think["thinking"] and think["thinking"] not in comp.choices[0].text
    with pytest.raises(openai.BadRequestError):
        oa.completions.create(model="tiny", prompt=prompt, max_tokens=2, extra_body={"reasoning_effort": "lots"})


def test_show_reports_the_compiled_context(server):
    info = server.post("/api/show", {"model": "tiny"}).json()["model_info"]
    assert info["qwen3.context_length"] == CONTEXT
    out = server.cli("show", "tiny").stdout
    assert any("context length" in line and str(CONTEXT) in line for line in out.splitlines()), out
    # The same number the loaded model reports.
    generate_text(server, {"prompt": "hi", "options": {"num_predict": 1}})
    ps = httpx.get(server.url + "/api/ps").json()
    loaded = [m for m in ps["models"] if m["name"].startswith("tiny")]
    assert loaded and loaded[0]["context_length"] == CONTEXT, ps


def test_num_ctx_is_the_compiled_context_with_a_warning(server):
    body = {"prompt": "one two three", "raw": True}
    want = generate_text(server, {**body, "options": {"temperature": 0, "num_predict": 8}})["response"]
    for num_ctx in (8192, 32):
        got = generate_text(server, {**body, "options": {"temperature": 0, "num_predict": 8, "num_ctx": num_ctx}})
        assert got["response"] == want, num_ctx
    deadline = time.time() + 5
    while time.time() < deadline:
        log = server.log_path.read_text()
        if "num_ctx=32" in log:
            break
        time.sleep(0.1)
    warnings = [line for line in log.splitlines() if "num_ctx differs from the context" in line]
    assert any("num_ctx=8192" in w and f"context_length={CONTEXT}" in w for w in warnings), warnings
    assert any("num_ctx=32" in w for w in warnings), warnings


def test_package_defaults_reach_the_library_and_ollama_alike(server, tools, work):
    # No options at all: the shipped packages' post_config.json (top-k 1)
    # means greedy to axllm, and now to Ollama too.
    _, greedy_dir = pack(tools, work / "greedy", "qwen3", seed=22)
    server.create("greedy", greedy_dir)
    prompt = "<|im_start|>user\nCount to ten.<|im_end|>\n<|im_start|>assistant\n"
    lib = replay(tools, greedy_dir, [{"kind": "generate", "text": prompt, "defaults": "package"}])["results"][0]
    got = server.post("/api/generate", {"model": "greedy", "prompt": prompt, "raw": True, "stream": False}).json()
    assert got["response"] == lib["text"] and got["done_reason"] == "length"

    # A package that samples: its temperature, top-k and top-p, with the
    # request's seed only.
    _, sampled_dir = pack(tools, work / "sampled", "qwen3", seed=23)
    (sampled_dir / "post_config.json").write_text(json.dumps({
        "enable_temperature": True, "temperature": 0.7, "enable_repetition_penalty": False,
        "repetition_penalty": 1.2, "penalty_window": 20, "enable_top_p_sampling": True, "top_p": 0.8,
        "enable_top_k_sampling": True, "top_k": 20}))
    server.create("sampled", sampled_dir)
    for seed in (3, 4):
        lib = replay(tools, sampled_dir, [{"kind": "generate", "text": prompt, "defaults": "package", "seed": seed,
                                           "num_predict": 20}])["results"][0]
        got = server.post("/api/generate", {"model": "sampled", "prompt": prompt, "raw": True, "stream": False,
                                            "options": {"seed": seed, "num_predict": 20}}).json()
        assert got["response"] == lib["text"], seed


def blob(server, path: Path):
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{server.url}/api/blobs/{digest}", content=data, timeout=120)
    assert r.status_code in (200, 201), r.text
    return digest


def upload(server, pkg: Path):
    return {str(p.relative_to(pkg)): blob(server, p) for p in sorted(pkg.rglob("*")) if p.is_file()}


def models(server):
    return [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]


BREAKAGES = {
    "truncated layer": lambda m: m.joinpath("qwen3_p16_l1_together.axmodel").write_bytes(
        m.joinpath("qwen3_p16_l1_together.axmodel").read_bytes()[:-64]),
    "short embedding": lambda m: os.truncate(m / "model.embed_tokens.weight.bfloat16.bin",
                                             (m / "model.embed_tokens.weight.bfloat16.bin").stat().st_size - 2),
    "bad tokenizer JSON": lambda m: m.joinpath("qwen3_tokenizer/tokenizer.json").write_text('{"model": [1, 2'),
    "missing layer": lambda m: m.joinpath("qwen3_p16_l0_together.axmodel").unlink(),
}
BROKEN_FILE = {"truncated layer": "qwen3_p16_l1_together.axmodel", "short embedding": "model.embed_tokens.weight.bfloat16.bin",
               "bad tokenizer JSON": "qwen3_tokenizer/tokenizer.json", "missing layer": "qwen3_p16_l0_together.axmodel"}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_create_refuses_a_broken_package(server, model_dir, work, breakage):
    pkg = work / f"broken-{breakage.replace(' ', '-')}"
    shutil.copytree(model_dir, pkg)
    files = upload(server, pkg)  # uploaded whole, for the API request below
    BREAKAGES[breakage](pkg)
    name = "broken-" + breakage.replace(" ", "-")
    # The CLI checks before uploading and names the user's own file.
    mf = work / f"Modelfile-{name}"
    mf.write_text(f"FROM {pkg}\n")
    out = server.cli("create", name, "-f", str(mf), check=False)
    assert out.returncode != 0, out.stdout
    # axllm names the package by the user's path and the file within it.
    assert str(pkg) in out.stderr and BROKEN_FILE[breakage] in out.stderr, out.stderr
    # A client that does not check (the API) gets a 400 that names the file
    # by its path in the package, not a temporary directory.
    if breakage != "missing layer":
        files[BROKEN_FILE[breakage]] = blob(server, pkg / BROKEN_FILE[breakage])
    else:
        del files[BROKEN_FILE[breakage]]
    r = server.post("/api/create", {"model": name, "files": files, "stream": False})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert BROKEN_FILE[breakage] in err and "/tmp" not in err and str(pkg) not in err, err
    assert not any(m.startswith(name) for m in models(server))


def test_create_refuses_bad_requests_with_400s(server, model_dir, work):
    files = upload(server, model_dir)
    some = next(iter(files.values()))
    for bad_files, words in [
        ({**files, "qwen3_tokenizer/vo\x00cab.json": some}, "control character"),
        ({**files, "qwen3_tokenizer\\vocab.json": some}, "file path must be relative"),
        ({**files, "../escape.json": some}, "file path must be relative"),
        ({**files, "qwen3_p16_l1_together.axmodel": "sha256:xyz"}, "digest"),
        ({**files, "qwen3_p16_l1_together.axmodel": "sha256:" + "a" * 64}, "qwen3_p16_l1_together.axmodel"),
        ({**files, "extra.bin": blob(server, GGUF)}, "found both axmodel and gguf inputs (extra.bin)"),
        ({**files, "model.gguf": blob(server, GGUF)}, "found both axmodel and gguf inputs"),
    ]:
        r = server.post("/api/create", {"model": "bad-request", "files": bad_files, "stream": False})
        assert r.status_code == 400 and words in r.json()["error"], (words, r.text)
    r = server.post("/api/create", {"model": "bad-request", "from": "tiny", "adapters": {"a.gguf": blob(server, GGUF)},
                                    "stream": False})
    assert r.status_code == 400 and "adapters" in r.json()["error"].lower(), r.text
    assert not any(m.startswith("bad-request") for m in models(server))
    # The CLI: a GGUF among a package's files, and ADAPTER.
    pkg = work / "with-gguf"
    shutil.copytree(model_dir, pkg)
    shutil.copy(GGUF, pkg / "extra.bin")
    mf = work / "Modelfile-with-gguf"
    mf.write_text(f"FROM {pkg}\n")
    out = server.cli("create", "with-gguf", "-f", str(mf), check=False)
    assert out.returncode != 0 and "found both axmodel and gguf inputs" in out.stderr, out
    mf.write_text(f"FROM tiny\nADAPTER {GGUF}\n")
    out = server.cli("create", "with-adapter", "-f", str(mf), check=False)
    assert out.returncode != 0 and "adapters are no longer supported" in out.stderr, out


def test_build_replaces_the_binary_while_it_serves(ollama_bin, tools, work):
    s = Server(ollama_bin, tools, work / "busy")
    try:
        before = os.stat(ollama_bin).st_ino
        run(["bash", ROOT / "ollama-patch/build.sh", "ollama"], cwd=ROOT)
        assert os.stat(ollama_bin).st_ino != before, "the binary was rewritten in place"
        assert s.proc.poll() is None
        httpx.get(s.url + "/api/version", timeout=5).raise_for_status()
        out = subprocess.run([str(ollama_bin), "--version"], capture_output=True, text=True)
        assert "0.34.4-ax650" in out.stdout + out.stderr
    finally:
        s.stop()
