"""The C example, compiled with -Wall -Wextra -Werror against include/axllm.h
and the static library, prints what the Rust library produces for the same
prompt and greedy options, and runs clean under valgrind and AddressSanitizer."""

import shutil
import subprocess

import pytest

from conftest import ROOT, TARGET, pack, replay, run, sim_env

LINK = ["-ldl", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-lc"]
PROMPT = "<|im_start|>user\nhello, how are you?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def built(tools, tmp_path_factory):
    run(["cargo", "build", "--release", "-p", "axllm-capi"], cwd=ROOT)
    out = tmp_path_factory.mktemp("c")
    binaries = {}
    for name, flags in {"plain": [], "asan": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]}.items():
        exe = out / f"complete-{name}"
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *flags, "-I", ROOT / "include",
             ROOT / "examples/c/main.c", TARGET / "libaxllm.a", *LINK, "-o", exe])
        binaries[name] = exe
    _, model = pack(tools, out, "qwen3", seed=21)
    return binaries, model


def rust_text(tools, model, n):
    return replay(tools, model, [{"kind": "generate", "text": PROMPT, "num_predict": n}])["results"][0]["text"]


def test_header_compiles_as_cpp():
    run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++", "-I", ROOT / "include",
         ROOT / "examples/c/main.c"])


def test_c_output_equals_rust(built, tools):
    binaries, model = built
    res = run([binaries["plain"], model, PROMPT, "24"], env=sim_env(tools))
    assert res.stdout == rust_text(tools, model, 24)
    assert res.stdout
    assert "[done" in res.stderr


def test_asan_clean(built, tools):
    binaries, model = built
    env = sim_env(tools, {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23"})
    res = subprocess.run([str(binaries["asan"]), str(model), PROMPT, "8"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ERROR: AddressSanitizer" not in res.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is installed by scripts/setup.sh")
def test_valgrind_clean(built, tools):
    binaries, model = built
    res = subprocess.run(
        ["valgrind", "--error-exitcode=42", "--leak-check=full", "--errors-for-leak-kinds=definite",
         str(binaries["plain"]), str(model), PROMPT, "6"],
        capture_output=True, text=True, env=sim_env(tools),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "definitely lost: 0 bytes" in res.stderr or "All heap blocks were freed" in res.stderr
