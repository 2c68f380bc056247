#!/usr/bin/env python3
"""Encodes and decodes seeded random text with HF `tokenizers` for TokenizerParityTests.

Usage: tokenizer_fuzz.py TOKENIZER_JSON SEED COUNT
Prints JSON: {"encodings": [{"text", "ids", "ids_special"}], "decodings": [{"ids", "text", "text_special"}]}
- encodings: COUNT strings built from whitespace runs (spaces, tabs, CR, LF, CR/LF), emoji
  (ZWJ sequences, flags, skin tones, variation selectors), mixed scripts, combining marks,
  digits, punctuation and special-token spellings; ids without and with the special tokens the
  post-processor adds.
- decodings: COUNT id sequences: random ids (byte tokens among them, so invalid UTF-8 comes up)
  and encodings cut at random points (half a character); text skipping special tokens and not.
"""
import json
import random
import sys

from tokenizers import Tokenizer

PIECES = [
    "hello", "world", "The", "quick brown fox", "don't", "I'll", "it's", "HOW'S", "naïve", "café", "Ünïcödé",
    "e\u0301", "A\u030a", "\u00c5", "ﬁ", "Ⅻ", "½", "１２３", "漢字", "日本語のテキスト", "中文", "привет", "мир",
    "مرحبا", "שלום", "नमस्ते", "ภาษาไทย", "한국어", "Ελληνικά", "😀", "👍🏽", "👩‍👩‍👧", "🇫🇷", "❤️", "🫩", "🤔➡️🌱",
    "12345", "3.14159", "1,000,000", "...", "!?", "---", "(x)", "[y]", "{z}", "#", "@user", "a_b", "CamelCase",
    "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<bos>", "<eos>", "<start_of_turn>",
    "<unk>", "<0x41>", "▁", "▁▁x", "\u200b", "\u00a0", "\u3000", "\ufeff", "\x00", "\x7f", "\x0b", "\x85", "\u2028", "~", "`code`",
    " \u0301", "1\u0301",
]
SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\n\r\n", " \n", "\n ", " \t ", "\u00a0", ""]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.35:
            parts.append(rng.choice(SPACES))
        parts.append(rng.choice(PIECES))
    if rng.random() < 0.3:
        parts.insert(0, rng.choice(SPACES))
    if rng.random() < 0.3:
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def main():
    path, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tok = Tokenizer.from_file(path)
    rng = random.Random(seed)
    encodings = []
    for _ in range(count):
        text = random_text(rng)
        encodings.append({
            "text": text,
            "ids": tok.encode(text, add_special_tokens=False).ids,
            "ids_special": tok.encode(text, add_special_tokens=True).ids,
        })
    size = tok.get_vocab_size(with_added_tokens=True)
    decodings = []
    for i in range(count):
        if i % 2 == 0:
            ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        else:
            ids = rng.choice(encodings)["ids"]
            if len(ids) > 1:
                a = rng.randrange(len(ids))
                ids = ids[a:rng.randint(a + 1, len(ids))]
        decodings.append({
            "ids": ids,
            "text": tok.decode(ids, skip_special_tokens=True),
            "text_special": tok.decode(ids, skip_special_tokens=False),
        })
    json.dump({"encodings": encodings, "decodings": decodings}, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
