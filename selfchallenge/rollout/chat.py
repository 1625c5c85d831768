"""Token-in/token-out chat bookkeeping for multi-turn episodes, for any Hugging Face chat template.

An episode's token sequence is built incrementally and never re-tokenised:

    ids = chat.prompt_ids(first_messages)             # template + generation prompt
    out = engine.generate(ids, ...)                   # sampled tokens, loss mask 1
    ids += out.token_ids + chat.close_turn_ids(out.token_ids)   # closing tokens (if any), mask 0
    ids += chat.append_ids("tool", observation)       # next message + generation prompt, mask 0
    ...

How the deltas are found (works for ChatML, Llama-3, Mistral-style templates alike): the template is rendered
as *text* for a small reference conversation `[user, assistant]` whose contents are sentinels.

* `assistant_end_ids`: the text the template puts after the assistant content, up to and including the first
  special token there (ChatML `<|im_end|>`, Llama-3 `<|eot_id|>`, Mistral `</s>`); that is what the model
  emits to end its turn. If the template closes turns without a special token, the whole tail is used.
* `append_ids(role, content)`: render `[user, assistant, {role: content}]` with the generation prompt; the
  text after the assistant turn's end marker is the delta (e.g. ChatML `\\n<|im_start|>tool\\n...<|im_end|>\\n
  <|im_start|>assistant\\n`, Llama-3 `<|start_header_id|>ipython<|end_header_id|>\\n\\n...<|eot_id|>
  <|start_header_id|>assistant<|end_header_id|>\\n\\n`). Only the delta text is tokenised.

Deltas start right after a special token, where byte-level BPE cannot merge across the boundary, so
prompt + sampled tokens + deltas equal the tokenisation of the full rendering whenever the model's tokens equal
the tokenisation of its text (the test checks this). Templates that rewrite earlier turns when a new message
arrives (e.g. ones that strip reasoning from past assistant turns) break the prefix property; that is reported
as a `ValueError` naming the template problem.
"""

from __future__ import annotations

from typing import Any

_USER_SENTINEL = "SELFCHALLENGE_USER_SENTINEL"
_ASSISTANT_SENTINEL = "SELFCHALLENGE_ASSISTANT_SENTINEL"


class ChatTokens:
    """Chat-template token deltas for one tokenizer (see the module docstring for how they are computed)."""

    def __init__(
        self,
        tokenizer: Any,
        tools: list[dict] | None = None,
        template_kwargs: dict[str, Any] | None = None,
        end_of_turn_token: str | None = None,
    ) -> None:
        """`tokenizer`: a Hugging Face tokenizer with a chat template; `tools` and `template_kwargs` are passed
        to every rendering; `end_of_turn_token` overrides the detected turn-closing special token."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template; "
                "set tokenizer.chat_template or use a model folder that ships one"
            )
        self.tokenizer = tokenizer
        self.tools = tools
        self.template_kwargs = dict(template_kwargs or {})
        self._base = [
            {"role": "user", "content": _USER_SENTINEL},
            {"role": "assistant", "content": _ASSISTANT_SENTINEL},
        ]
        self._base_text = self._render(self._base, add_generation_prompt=False)
        self._turn_end = self._find_turn_end(end_of_turn_token)
        end_text = self._base_text[self._content_end() : self._turn_end]
        self.assistant_end_ids: list[int] = self._encode(end_text)
        """Tokens that close an assistant turn (append with loss mask 0 when generation did not emit them)."""
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.stop_token_ids: list[int] = [i for i in self.assistant_end_ids if i in special]
        """Special tokens among `assistant_end_ids`: pass them as `stop_token_ids` when sampling a turn."""

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            tools=self.tools,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **self.template_kwargs,
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _content_end(self) -> int:
        pos = self._base_text.rfind(_ASSISTANT_SENTINEL)
        if pos < 0:
            raise ValueError("the chat template drops assistant message content; it cannot be used for rollouts")
        return pos + len(_ASSISTANT_SENTINEL)

    def _find_turn_end(self, end_of_turn_token: str | None) -> int:
        """Index in the reference rendering just past the marker that closes the assistant turn."""
        start = self._content_end()
        tail = self._base_text[start:]
        if end_of_turn_token is not None:
            candidates = [end_of_turn_token]
            if end_of_turn_token not in tail:
                raise ValueError(
                    f"end_of_turn_token={end_of_turn_token!r} does not follow assistant content in the chat "
                    f"template (the template writes {tail!r}); pass the token the template uses"
                )
        else:
            candidates = list(getattr(self.tokenizer, "all_special_tokens", []) or [])
            candidates += [t for t, _ in (getattr(self.tokenizer, "get_added_vocab", dict)() or {}).items()]
        hits = [(tail.find(tok), tok) for tok in candidates if tok and tok in tail]
        if not hits:
            return len(self._base_text)  # no special token closes the turn: the whole tail does
        index, token = min(hits, key=lambda hit: (hit[0], -len(hit[1])))
        return start + index + len(token)

    def prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of `messages` rendered by the template, ending with the assistant generation prompt."""
        return self._encode(self._render(messages, add_generation_prompt=True))

    def append_ids(self, role: str, content: str) -> list[int]:
        """Tokens to append after a closed assistant turn: the new `role` message plus the generation prompt."""
        message = {"role": role, "content": content}
        text = self._render([*self._base, message], add_generation_prompt=True)
        prefix = self._base_text[: self._turn_end]
        if not text.startswith(prefix):
            raise ValueError(
                f"the chat template re-renders earlier turns when a {role!r} message follows an assistant turn "
                "(the rendering is not an extension of the previous one), so incremental token deltas are "
                "impossible; use a template that renders past turns unchanged"
            )
        return self._encode(text[len(prefix) :])

    def close_turn_ids(self, sampled_ids: list[int]) -> list[int]:
        """`assistant_end_ids` unless `sampled_ids` already ends with them (generation stopped on end-of-turn)."""
        end = self.assistant_end_ids
        if end and list(sampled_ids[-len(end) :]) == end:
            return []
        if sampled_ids and sampled_ids[-1] in self.stop_token_ids:
            return []  # stopped on the end-of-turn token (without the optional text the template puts before it)
        return list(end)
