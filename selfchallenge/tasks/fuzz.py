"""Mutated challenger outputs, for robustness tests of the parser and the filter (tests/test_fuzz.py, bench/fuzz.py).

Each mutation starts from a well-formed task text (`format_task` of a real record) and breaks it the ways a
sampled model and a hostile one do: truncation anywhere (max_tokens), dropped or doubled or nested tags, tags
in the wrong order, huge or empty fields, many failure cases, binary and control bytes, text decoded with the
wrong codec, lone surrogates, NUL bytes, confusable tag names, code that raises, hangs, recurses or floods its
output. Deterministic in its seed. `fuzz_parser_and_filter` runs them through `parse_challenger_output` and the
sandbox check and counts what happened.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import check_rule
from .parser import PARSE_REASONS, format_task, parse_challenger_output

TAGS = ("task", "instruction", "inputs", "evaluation_function", "solution", "failure_case")
HOSTILE_CODE = (
    "while True:\n    pass",
    "import os\nos._exit(0)",
    "def f():\n    return f()\nf()",
    "print('x' * 10_000_000)",
    "raise SystemExit(3)",
    "answer = float('nan')",
    "answer = '\\ud800'",
    "import sys\nsys.stdout.write('\\x00' * 1000)\nanswer = b'\\xff'",
    "answer = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "x = [0] * (10 ** 9)",
    "def evaluate(state, answer)\n    return True",
    "import ctypes\nctypes.string_at(0)",
)


def _truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def _drop_closing(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS)
    return text.replace(f"</{tag}>", "", 1)


def _drop_opening(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS)
    return text.replace(f"<{tag}>", "", 1)


def _double_tag(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS)
    start, end = text.find(f"<{tag}>"), text.find(f"</{tag}>")
    if start < 0 or end < 0:
        return text + f"<{tag}>again</{tag}>"
    block = text[start : end + len(tag) + 3]
    return text[:start] + block + block + text[start:]


def _nest(rng: random.Random, text: str) -> str:
    outer, inner = rng.sample(TAGS, 2)
    return f"<{outer}>{text}<{inner}><{outer}>nested</{outer}></{inner}></{outer}>"


def _huge_field(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS[1:])
    blob = rng.choice(("x", "é", "\n", "<", "</solution>", "🙂")) * rng.choice((9_000, 100_000, 1_000_000))
    return text.replace(f"<{tag}>", f"<{tag}>{blob}", 1)


def _empty_field(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS[1:])
    start, end = text.find(f"<{tag}>"), text.find(f"</{tag}>")
    if start < 0 or end < 0:
        return text
    return text[: start + len(tag) + 2] + rng.choice(("", " ", "\n\n", "```\n```")) + text[end:]


def _many_failure_cases(rng: random.Random, text: str) -> str:
    return text + "".join(f"<failure_case>answer = {i}</failure_case>" for i in range(rng.choice((9, 50, 1000))))


def _binary(rng: random.Random, text: str) -> str:
    cut = rng.randrange(len(text) + 1)
    noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return text[:cut] + noise.decode("latin-1") + text[cut:]


def _wrong_codec(rng: random.Random, text: str) -> str:
    """UTF-8 bytes read back as another codec: mojibake for latin-1/cp1252 (the instruction says "café"), nonsense
    for utf-16 and EBCDIC."""
    codec = rng.choice(("latin-1", "cp1252", "utf-16-le", "cp037"))
    return (
        text.replace("</instruction>", " (café, 5 €)</instruction>", 1)
        .encode("utf-8", "surrogatepass")
        .decode(codec, "replace")
    )


def _surrogates(rng: random.Random, text: str) -> str:
    cut = rng.randrange(len(text) + 1)
    return text[:cut] + rng.choice(("\ud800", "\udfff", "\ud83d", "\x00", "\ufeff", "\u202e")) + text[cut:]


def _confusable(rng: random.Random, text: str) -> str:
    tag = rng.choice(TAGS)
    fake = rng.choice((tag.upper(), tag + " ", f"{tag}\u200b", tag.replace("i", "\u0456")))
    return text.replace(f"<{tag}>", f"<{fake}>", 1)


def _hostile_code(rng: random.Random, text: str) -> str:
    tag = rng.choice(("evaluation_function", "solution", "failure_case"))
    start, end = text.find(f"<{tag}>"), text.find(f"</{tag}>")
    if start < 0 or end < 0:
        return text
    return text[: start + len(tag) + 2] + "\n" + rng.choice(HOSTILE_CODE) + "\n" + text[end:]


def _reorder(rng: random.Random, text: str) -> str:
    parts = text.split("\n")
    rng.shuffle(parts)
    return "\n".join(parts)


def _inputs(rng: random.Random, text: str) -> str:
    value = rng.choice(('{"x": 1}', "[1, 2]", "{'x': 1}", '{"1x": 2}', '{"x": true}', '{"x": {"y": 1}}', "nan"))
    return text.replace("</instruction>", f"</instruction><inputs>{value}</inputs>", 1)


MUTATIONS: dict[str, Callable[[random.Random, str], str]] = {
    function.__name__.lstrip("_"): function
    for function in (
        _truncate, _drop_closing, _drop_opening, _double_tag, _nest, _huge_field, _empty_field,
        _many_failure_cases, _binary, _wrong_codec, _surrogates, _confusable, _hostile_code, _reorder, _inputs,
    )
}  # fmt: skip


def mutated_outputs(texts: list[str], n: int, seed: int = 0, max_mutations: int = 3) -> Iterator[tuple[str, int, str]]:
    """`n` (mutation names, index of the source text, text) triples: each a random well-formed text with
    1..max_mutations mutations applied in turn (about one in ten left intact, so that the filter also sees whole
    tasks)."""
    rng = random.Random(f"fuzz-{seed}")
    names = sorted(MUTATIONS)
    for _ in range(n):
        source = rng.randrange(len(texts))
        text = texts[source]
        applied = [] if rng.random() < 0.1 else rng.choices(names, k=rng.randint(1, max_mutations))
        for name in applied:
            text = MUTATIONS[name](rng, text)
        yield "+".join(applied) or "intact", source, text


def well_formed_texts(per_env: int = 6, seed: int = 0) -> list[tuple[str, dict, str]]:
    """(env, env_config, task text) of kept-quality tasks in every environment: the warm start's generators (the
    calculation families, the scripted world families), formatted as the challenger writes them."""
    from ..warmstart import GENERATOR_DOMAINS, generate_tasks
    from ..warmstart.recipe import WORLD_FAMILIES
    from ..warmstart.scripted import generate_scripted_tasks

    items = generate_tasks(per_env, seed=seed, domains=GENERATOR_DOMAINS)
    for env_name, families in sorted(WORLD_FAMILIES.items()):
        items += generate_scripted_tasks(env_name, {}, families, per_env, seed, 0.0)
    return [(item.task.env, item.task.env_config, format_task(item.task)) for item in items]


@dataclass
class FuzzReport:
    outputs: int = 0
    parse_reasons: Counter = field(default_factory=Counter)
    check_reasons: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)  # "<stage> <mutations>: <error>"; the goal is none
    unknown_reasons: list[str] = field(default_factory=list)  # a rejection without a known reason code
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "outputs": self.outputs,
            "parsed": self.parse_reasons["parsed"],
            "checked": sum(self.check_reasons.values()),
            "crashes": len(self.crashes),
            "unknown_reasons": len(self.unknown_reasons),
            "parse_reasons": dict(self.parse_reasons.most_common()),
            "check_reasons": dict(self.check_reasons.most_common()),
            "seconds": round(self.seconds, 1),
        }


def fuzz_parser_and_filter(
    check_many: Callable[[list[dict]], list[dict]],
    n: int,
    seed: int = 0,
    max_checks: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> FuzzReport:
    """`n` mutated outputs through the parser; the tasks that parse (at most `max_checks`, spread over the
    mutations) through `check_many` (the sandbox pool's, min_failure_cases included). A crash is any exception
    from either; every outcome must carry a reason code of `PARSE_REASONS` or `check_rule.REASONS`."""
    started, report = time.monotonic(), FuzzReport()
    sources = well_formed_texts(seed=seed)
    parsed = []
    for mutations, source, text in mutated_outputs([text for _, _, text in sources], n, seed):
        env, env_config, _ = sources[source]
        report.outputs += 1
        try:
            result = parse_challenger_output(text, env, dict(env_config), {"fuzz": mutations})
            if result.task is not None:
                parsed.append((mutations, result.task.sandbox_payload()))
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            report.crashes.append(f"parse {mutations}: {type(exc).__name__}: {exc}"[:300])
            continue
        report.parse_reasons[result.reason] += 1
        if result.reason != "parsed" and result.reason not in PARSE_REASONS:
            report.unknown_reasons.append(f"parse {mutations}: {result.reason}")
    if progress:
        progress(f"{report.outputs} outputs parsed in {time.monotonic() - started:.1f} s: {len(parsed)} tasks")
    random.Random(f"fuzz-checks-{seed}").shuffle(parsed)
    chosen = parsed if max_checks is None else parsed[:max_checks]
    for start in range(0, len(chosen), 50):
        batch = chosen[start : start + 50]
        try:
            verdicts = check_many([payload for _, payload in batch])
        except Exception as exc:  # noqa: BLE001
            report.crashes.append(f"check {[m for m, _ in batch]}: {type(exc).__name__}: {exc}"[:300])
            continue
        for (mutations, _), verdict in zip(batch, verdicts, strict=True):
            reason = verdict.get("reason")
            report.check_reasons[reason] += 1
            if reason not in check_rule.REASONS:
                report.unknown_reasons.append(f"check {mutations}: {reason}")
        if progress:
            progress(f"{start + len(batch)}/{len(chosen)} checked in {time.monotonic() - started:.1f} s")
    report.seconds = time.monotonic() - started
    return report
