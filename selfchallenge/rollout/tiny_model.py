"""A tiny randomly initialised Llama with a byte-level BPE tokenizer and a chat template, built offline.

No model hub is reachable on the development and CI machines, so tests and smoke runs use this model. It is
deterministic: the tokenizer depends only on the corpus, the weights only on `seed` and the sizes.

The chat template is ChatML-like (`<|im_start|>{role}\\n{content}<|im_end|>\\n`, roles system/user/assistant/
tool) and `<|im_end|>` is the end-of-turn token (the tokenizer's eos), so vLLM stops a turn on it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator

BOS_TOKEN = "<|endoftext|>"
START_TOKEN = "<|im_start|>"
END_OF_TURN_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [BOS_TOKEN, START_TOKEN, END_OF_TURN_TOKEN, PAD_TOKEN]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] -%}"
    "{{- raise_exception('unsupported chat role ' + message['role'] + '; use system, user, assistant or tool') -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

MIN_VOCAB_SIZE = 300  # 256 byte symbols + the special tokens + a few merges


def default_corpus(num_samples: int = 600) -> list[str]:
    """Chat-, code- and tool-call-like text used to train the tokenizer (fixed: it ignores the model seed)."""
    rng = random.Random(1234)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    items = ["lamp", "chair", "book", "phone", "laptop", "mug", "shirt", "shoes", "table", "camera"]
    cities = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Austin", "Seoul", "Rome"]
    tools = ["get_order", "cancel_order", "search_flights", "book_flight", "add", "multiply", "open_url"]
    roles = ["system", "user", "assistant", "tool"]
    corpus = []
    for i in range(num_samples):
        name, item, city, tool = rng.choice(names), rng.choice(items), rng.choice(cities), rng.choice(tools)
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        order = f"#W{rng.randint(1000000, 9999999)}"
        kind = i % 6
        if kind == 0:
            corpus.append(
                f"Hi, I am {name}. I want to return the {item} from order {order}. "
                f"Sure, I can help with that. Could you confirm your zip code?"
            )
        elif kind == 1:
            corpus.append(
                f"def compute_{tool}(x, y):\n    result = x * {a} + y - {b}\n    return result\n\n"
                f"print(compute_{tool}({a}, {b}))"
            )
        elif kind == 2:
            args = json.dumps({"order_id": order, "item": item, "quantity": b})
            corpus.append(f'{{"name": "{tool}", "arguments": {args}}}')
        elif kind == 3:
            corpus.append(
                f"```python\nstate = env.{tool}(user_id='{name}_{a}')\nif state['status'] == 'ok':\n"
                f"    answer = state['total'] + {b}\n```\nObservation: {a + b}"
            )
        elif kind == 4:
            corpus.append(
                f"Find a flight from {city} to {rng.choice(cities)} for {name}. The cheapest one costs "
                f"{a}.{b:02d} dollars and leaves at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}."
            )
        else:
            corpus.append(
                f"<task>\nCompute {a} plus {b} times {rng.randint(2, 9)}.\n</task>\n<verifier>\n"
                f"def verify(state, answer):\n    return answer == {a + b}\n</verifier>\nThe answer is {a + b}."
            )
        # Role names as the chat template writes them, so they become single tokens.
        corpus[-1] = f"{roles[i % len(roles)]}\n{corpus[-1]}"
    return corpus


def train_tokenizer(vocab_size: int, corpus: Iterable[str] | None = None):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `corpus` (default: `default_corpus()`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size={vocab_size} is too small; use at least {MIN_VOCAB_SIZE} (256 byte symbols)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts: Iterator[str] = iter(default_corpus() if corpus is None else corpus)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def build_tiny_model(
    out_dir: str,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 1024,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    max_position_embeddings: int = 4096,
) -> str:
    """Write a tokenizer (with chat template) and a randomly initialised float32 `LlamaForCausalLM` to `out_dir`.

    head_dim = hidden_size // heads (64 with the defaults; vLLM's CPU attention needs one of 32, 64, 80, 96, 112,
    128, ...). The folder loads with `AutoTokenizer`/`AutoModelForCausalLM` and with vLLM. Returns `out_dir`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if hidden_size <= 0 or layers <= 0 or heads <= 0:
        raise ValueError(f"hidden_size ({hidden_size}), layers ({layers}) and heads ({heads}) must all be > 0")
    if hidden_size % heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by heads={heads} (head_dim = hidden/heads)")

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(vocab_size, corpus),
        bos_token=BOS_TOKEN,
        eos_token=END_OF_TURN_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
