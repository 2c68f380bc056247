#!/usr/bin/env python3
"""Drives a running `hifc serve` with the official `openai` client: completions and chat
completions, whole and streamed, usage, and an error the client must see as a 400.

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
