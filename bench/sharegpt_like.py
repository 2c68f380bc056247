#!/usr/bin/env python3
"""Writes a ShareGPT-format file of made-up conversations, for `hifc bench serve --dataset-path`
where the real ShareGPT file (ShareGPT_V3_unfiltered_cleaned_split.json, on the Hugging Face hub)
cannot be fetched, as on this project's VM.

Each conversation has 1, 2, 3 or 5 turns; a message is 1-8 sentences and a reply 1-20, drawn from
the sentences of the files given (README.md and the GPL-3 text by default: English prose, so the
lengths in tokens behave like chat text, not like random words). A few records are malformed on
purpose, as in the real file: a one-message conversation and a two-character prompt, which the
sampler leaves out. The same seed writes the same file.

Usage: python3 bench/sharegpt_like.py OUT.json [--conversations 3000] [--seed 1] [--source FILE ...]
"""
import argparse
import json
import random
import re

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--conversations", type=int, default=3000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--source", nargs="+", default=["README.md", "/usr/share/common-licenses/GPL-3"])
args = p.parse_args()

text = "\n".join(open(path, encoding="utf-8").read() for path in args.source)
sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 20 < len(s.strip()) < 400]
rnd = random.Random(args.seed)


def message(count):
    return " ".join(rnd.choice(sentences) for _ in range(count))


records = []
for index in range(args.conversations):
    if rnd.random() < 0.03:
        conversation = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": message(3)}]
    else:
        conversation = []
        for _ in range(rnd.choice([1, 1, 2, 3, 5])):
            conversation.append({"from": "human", "value": message(rnd.randint(1, 8))})
            conversation.append({"from": "gpt", "value": message(rnd.randint(1, 20))})
        if rnd.random() < 0.02:
            conversation = conversation[:1]
    records.append({"id": f"c{index}", "conversations": conversation})
with open(args.out, "w", encoding="utf-8") as f:
    json.dump(records, f)
print(f"{args.out}: {len(records)} conversations, {sum(len(r['conversations']) for r in records)} messages")
