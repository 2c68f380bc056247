#!/usr/bin/env python3
"""Reference encodings from HF's `tokenizers` package for ModelsTests.

Usage: reference_tokenize.py TOKENIZER_JSON TEXTS.json
Prints JSON: {"available": bool, "ids": [[...] per text], "decoded": [str per text]}
(`available` is false when the `tokenizers` package is not installed; scripts/test.sh installs it)."""
import json
import sys

try:
    from tokenizers import Tokenizer
except ImportError:
    json.dump({"available": False}, sys.stdout)
    sys.exit(0)

tokenizer = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2]) as f:
    texts = json.load(f)
ids = [tokenizer.encode(t).ids for t in texts]
decoded = [tokenizer.decode(i, skip_special_tokens=True) for i in ids]
json.dump({"available": True, "ids": ids, "decoded": decoded}, sys.stdout)
