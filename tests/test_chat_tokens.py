"""ChatTokens: incremental token deltas must reproduce the full chat-template rendering (no re-tokenisation)."""

from __future__ import annotations

import pytest

from selfchallenge.rollout.chat import ChatTokens
from selfchallenge.rollout.tiny_model import CHAT_TEMPLATE, END_OF_TURN_TOKEN, build_tiny_model

# The Llama-3 instruct template (header tokens, `| trim`, bos on the first message, <|eot_id|> closes turns).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CONVERSATION = [
    {"role": "system", "content": "You are a helpful agent. Use tools when needed."},
    {"role": "user", "content": "What is 12 times 7, plus the price of order #W123?"},
    {"role": "assistant", "content": "```python\nprice = env.get_order('#W123')['total']\nprint(12 * 7 + price)\n```"},
    {"role": "tool", "content": "Observation: 130.5\n"},
    {"role": "assistant", "content": "The answer is 130.5. Anything else?"},
    {"role": "user", "content": "No, thanks!"},
    {"role": "assistant", "content": "Bye."},
]


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    path = build_tiny_model(str(tmp_path_factory.mktemp("tiny")), hidden_size=64, layers=1, heads=1)
    return AutoTokenizer.from_pretrained(path)


def _llama3_tokenizer(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens(LLAMA3_SPECIALS, special_tokens=True)
    tok.bos_token = "<|begin_of_text|>"
    tok.eos_token = "<|eot_id|>"
    tok.chat_template = LLAMA3_TEMPLATE
    return tok


def _incremental_ids(chat: ChatTokens, tokenizer, messages: list[dict]) -> list[int]:
    """Build the episode token by token as a rollout would: prompt, then per turn sampled + closing + delta."""
    first_assistant = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    ids = chat.prompt_ids(messages[:first_assistant])
    for message in messages[first_assistant:]:
        if message["role"] == "assistant":
            sampled = tokenizer.encode(message["content"], add_special_tokens=False)  # stands in for the engine
            ids += sampled + chat.close_turn_ids(sampled)
        else:
            ids += chat.append_ids(message["role"], message["content"])
    return ids


@pytest.mark.parametrize("template", ["chatml", "llama3"])
def test_deltas_reproduce_full_rendering(tiny_tokenizer, template):
    tokenizer = tiny_tokenizer if template == "chatml" else _llama3_tokenizer(tiny_tokenizer)
    chat = ChatTokens(tokenizer)
    full_text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    full_ids = tokenizer.encode(full_text, add_special_tokens=False)
    ids = _incremental_ids(chat, tokenizer, CONVERSATION)
    # The episode ends right after the last end-of-turn token; the full rendering may add trailing glue ("\n").
    assert ids == full_ids[: len(ids)]
    assert tokenizer.decode(full_ids[len(ids) :]) in ("", "\n")
    assert len(ids) > 40


def test_end_of_turn_detection(tiny_tokenizer):
    chatml = ChatTokens(tiny_tokenizer)
    eot = tiny_tokenizer.convert_tokens_to_ids(END_OF_TURN_TOKEN)
    assert chatml.assistant_end_ids == [eot]
    assert chatml.stop_token_ids == [eot]
    delta = tiny_tokenizer.decode(chatml.append_ids("user", "hi"))
    assert delta == "\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"

    llama = _llama3_tokenizer(tiny_tokenizer)
    chat = ChatTokens(llama)
    assert llama.convert_ids_to_tokens(chat.assistant_end_ids) == ["<|eot_id|>"]
    delta = llama.decode(chat.append_ids("tool", " 42 "))
    assert (
        delta
        == "<|start_header_id|>tool<|end_header_id|>\n\n42<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_close_turn_ids(tiny_tokenizer):
    chat = ChatTokens(tiny_tokenizer)
    text_ids = tiny_tokenizer.encode("partial answer", add_special_tokens=False)
    assert chat.close_turn_ids(text_ids) == chat.assistant_end_ids  # stopped on max_tokens / a stop string
    assert chat.close_turn_ids(text_ids + chat.assistant_end_ids) == []  # stopped on end-of-turn


def test_prompt_ids_end_with_generation_prompt(tiny_tokenizer):
    chat = ChatTokens(tiny_tokenizer)
    ids = chat.prompt_ids(CONVERSATION[:2])
    assert tiny_tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_clear_errors(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        ChatTokens(tok)
    # A template that hides past assistant turns once another message follows: no incremental deltas possible.
    tok.chat_template = CHAT_TEMPLATE.replace(
        "message['content'] + '<|im_end|>",
        "(message['content'] if message['role'] != 'assistant' or loop.last else '') + '<|im_end|>",
    )
    chat = ChatTokens(tok)
    with pytest.raises(ValueError, match="re-renders earlier turns"):
        chat.append_ids("user", "next")
    with pytest.raises(ValueError, match="end_of_turn_token"):
        ChatTokens(tiny_tokenizer, end_of_turn_token="<|eot_id|>")
