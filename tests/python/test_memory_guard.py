"""The memory guard through `ollama serve`: on a simulated card with little
CMM, a model whose files fit but whose K/V caches do not is refused at once
with Ollama's out-of-memory error (the runner loaded no file), the server
stays up, and a model that fits is served by the same server."""

import re

from conftest import GEOMETRY, PACKING, Server, run

# The simulator's CMM: the runner's default 128 MiB reserve plus 2 MiB. The
# tiny model (context 127) needs well under 1 MiB; the long one's K/V caches
# (2 layers x 8191 positions x 2 x 128 bf16 values) need 8 MiB.
SIM_CONFIG = "mem_mb=130"
LONG_GEOMETRY = [*GEOMETRY[:GEOMETRY.index("--heads")], "--heads", "8", "--kv-heads", "8",
                 *GEOMETRY[GEOMETRY.index("--head-dim"):]]
LONG_PACKING = ["--chunk", "16", "--context", "8191", "--prefill-history", "16"]


def test_a_model_that_cannot_fit_is_refused_before_loading_and_the_server_stays_up(ollama_bin, tools, tmp_path):
    ckpt, tiny, long = tmp_path / "ckpt", tmp_path / "tiny", tmp_path / "long"
    run([tools["pack"], "random", ckpt, "--arch", "qwen3", "--seed", "5", *GEOMETRY])
    run([tools["pack"], "hf", ckpt, tiny, *PACKING])
    ckpt8 = tmp_path / "ckpt8"
    run([tools["pack"], "random", ckpt8, "--arch", "qwen3", "--seed", "5", *LONG_GEOMETRY])
    run([tools["pack"], "hf", ckpt8, long, *LONG_PACKING])
    s = Server(ollama_bin, tools, tmp_path / "serve", {"AXCL_SIM_CONFIG": SIM_CONFIG})
    try:
        s.create("tiny", tiny)
        s.create("long", long)
        r = s.post("/api/generate", {"model": "long", "prompt": "hi", "stream": False, "options": {"num_predict": 2}})
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert "out of memory" in error and "does not fit in the card's free CMM" in error, error
        buffers = float(re.search(r"buffers: ([0-9.]+) MiB", error).group(1))
        assert buffers >= 8.0, error
        assert "2 model files" not in error and "3 model files" in error, "every file counted (2 layers, post)"
        assert s.proc.poll() is None, "ollama serve survives"
        assert not s.runner_pids(), "the refused runner has exited"
        log = s.log_path.read_text()
        assert "does not fit" in log

        r = s.post("/api/generate", {"model": "tiny", "prompt": "hi", "raw": True, "stream": False,
                                     "options": {"temperature": 0, "num_predict": 3}})
        assert r.status_code == 200, r.text
        assert r.json()["eval_count"] == 3
    finally:
        s.stop()
