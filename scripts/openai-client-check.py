#!/usr/bin/env python3
"""Drives a running `hifc serve` with the official `openai` client: completions and chat
completions, whole and streamed, usage, log probabilities, logit bias and echo as the client's
types read them, and errors the client must see as a 400.

Usage: scripts/openai-client-check.py BASE_URL MODEL   (BASE_URL like http://127.0.0.1:8000/v1)
Exits 0 when every check passes; prints what failed otherwise.
"""
import sys

import openai


def main() -> int:
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)

    models = client.models.list()
    assert [m.id for m in models.data] == [model], models

    completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0)
    choice = completion.choices[0]
    assert completion.object == "text_completion", completion
    assert choice.finish_reason in ("stop", "length"), choice
    assert completion.usage.completion_tokens >= 1 and completion.usage.prompt_tokens >= 1, completion.usage
    again = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert again.choices[0].text == choice.text, "greedy decoding repeats itself"

    pieces, usage = [], None
    for chunk in client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == choice.text, (pieces, choice.text)
    assert usage is not None and usage.completion_tokens == completion.usage.completion_tokens, usage

    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=8, seed=3, temperature=0.8, n=2)
    assert chat.object == "chat.completion", chat
    assert len(chat.choices) == 2 and all(c.message.role == "assistant" for c in chat.choices), chat
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, chat.usage

    roles, content, finish = [], [], None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8, stream=True):
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                content.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert roles == ["assistant"], roles
    assert finish in ("stop", "length"), finish

    # Log probabilities, read through the client's own types.
    scored = client.completions.create(model=model, prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=2)
    lp = scored.choices[0].logprobs
    assert scored.choices[0].text == choice.text[: len(scored.choices[0].text)], "asking for logprobs changes no token"
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4, lp
    assert all(x <= 0 for x in lp.token_logprobs) and lp.text_offset[0] == 0, lp
    assert all(max(top.values()) == chosen for top, chosen in zip(lp.top_logprobs, lp.token_logprobs)), "greedy picks the likeliest"
    chat_scored = client.chat.completions.create(
        model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)
    entries = chat_scored.choices[0].logprobs.content
    assert len(entries) == chat_scored.usage.completion_tokens and all(len(e.top_logprobs) == 3 for e in entries), entries
    assert all(e.top_logprobs[0].logprob == e.logprob for e in entries), entries
    streamed_entries = []
    for chunk in client.chat.completions.create(
        model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, stream=True,
    ):
        for c in chunk.choices:
            if c.logprobs and c.logprobs.content:
                streamed_entries += [e.token for e in c.logprobs.content]
    assert streamed_entries == [e.token for e in entries], (streamed_entries, entries)

    # A bias of 100 makes the biased token the only one; echo repeats the prompt.
    forced = client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=3, temperature=0, logit_bias={"100": 100}, logprobs=0)
    assert len(set(forced.choices[0].logprobs.tokens)) == 1, forced.choices[0].logprobs
    echoed = client.completions.create(model=model, prompt="Once upon a time", max_tokens=2, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("Once upon a time"), echoed.choices[0].text

    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=4, response_format={"type": "json_object"})
        raise AssertionError("JSON output was asked for and not refused")
    except openai.BadRequestError as error:
        assert error.status_code == 400 and "response_format" in str(error), error
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=10_000_000)
        raise AssertionError("a max_tokens beyond the context was accepted")
    except openai.BadRequestError as error:
        assert error.status_code == 400 and "context" in str(error), error
    try:
        client.completions.create(model="no-such-model", prompt="hi")
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as error:
        assert error.status_code == 404, error

    print("openai client: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
