"""Parse the challenger's text into a Code-as-Task record.

The format (documented with examples in docs/code-as-task.md and taught in the challenger prompt):

    <task>
    <instruction>What the executor (or, in retail/airline, the simulated user) is told.</instruction>
    <evaluation_function>
    def evaluate(state, answer):
        return answer == 42
    </evaluation_function>
    <solution>
    answer = calculator("6*7")
    </solution>
    <failure_case>
    answer = calculator("6+7")
    </failure_case>
    <failure_case>
    answer = None
    </failure_case>
    </task>

Text outside the tags (exploration notes, reasoning) is ignored; Markdown code fences inside a code tag are
stripped; the `<task>` wrapper is optional. An optional `<inputs>{"price": 1200, "rate": 0.9}</inputs>` gives
the task's input values: they become `env_config["inputs"]`, which environments that support it (calculation)
bind as variables in every program and show the verifier as `state["inputs"]`. Parsing never runs or compiles the code: whether it compiles is
decided in the sandbox by the check. Every way parsing can fail has its own reason code (`PARSE_REASONS`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from .record import CaTTask, instance_key, task_id

MAX_FIELD_CHARS = 8000
MAX_FAILURE_CASES = 8

PARSE_REASONS = {
    "empty_output": "the challenger produced no text",
    "invalid_text": "the text is not valid Unicode (a lone surrogate): it cannot be hashed, stored or run",
    "out_of_tokens": "the episode's token budget ran out before the task was written",
    "unclosed_tag": "a tag was opened but never closed (often: generation hit max_tokens)",
    "missing_instruction": "no <instruction> tag",
    "missing_verifier": "no <evaluation_function> tag",
    "missing_solution": "no <solution> tag",
    "missing_failure_cases": "no <failure_case> tag",
    "duplicate_tag": "<instruction>, <evaluation_function> or <solution> appears more than once",
    "empty_field": "a tag is present but empty",
    "field_too_long": f"a field is longer than {MAX_FIELD_CHARS} characters",
    "too_many_failure_cases": f"more than {MAX_FAILURE_CASES} failure cases",
    "bad_inputs": "<inputs> is not a JSON object of name -> number/string",
    "inputs_disabled": "<inputs> given where the run does not allow it (challenger.inputs is off)",
}

_SINGLE_TAGS = {"instruction": "instruction", "evaluation_function": "verifier", "solution": "solution"}
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_+-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        assert reason in PARSE_REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail or PARSE_REASONS[reason]}")


@dataclass
class ParseResult:
    task: CaTTask | None
    reason: str  # "parsed" or a key of PARSE_REASONS
    detail: str = ""


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return (match.group(1) if match else text).strip("\n")


def _blocks(text: str, tag: str) -> list[str]:
    opened = len(re.findall(rf"<{tag}>", text))
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    if opened > len(bodies):
        raise ParseError("unclosed_tag", f"<{tag}> opened {opened} time(s), closed {len(bodies)}")
    return bodies


def parse_fields(text: str) -> dict:
    """The raw fields (instruction, verifier, solution, failure_cases) or a ParseError."""
    if not text or not text.strip():
        raise ParseError("empty_output")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError("invalid_text", f"character {exc.start}: {text[exc.start]!r}") from None
    fields: dict = {}
    for tag, name in _SINGLE_TAGS.items():
        bodies = _blocks(text, tag)
        if not bodies:
            raise ParseError(f"missing_{'verifier' if name == 'verifier' else name}", f"expected <{tag}>...</{tag}>")
        if len(bodies) > 1:
            raise ParseError("duplicate_tag", f"<{tag}> appears {len(bodies)} times")
        fields[name] = bodies[0].strip() if name == "instruction" else _strip_fence(bodies[0])
    cases = [_strip_fence(body) for body in _blocks(text, "failure_case")]
    if not cases:
        raise ParseError("missing_failure_cases", "expected one or more <failure_case>...</failure_case>")
    if len(cases) > MAX_FAILURE_CASES:
        raise ParseError("too_many_failure_cases", f"{len(cases)} given")
    fields["failure_cases"] = cases
    inputs = _blocks(text, "inputs")
    if len(inputs) > 1:
        raise ParseError("duplicate_tag", f"<inputs> appears {len(inputs)} times")
    if inputs:
        try:
            value = json.loads(_strip_fence(inputs[0]))
        except json.JSONDecodeError as exc:
            raise ParseError("bad_inputs", f"not JSON ({exc.msg})") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, (int, float, str)) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            raise ParseError("bad_inputs", "expected an object of variable name -> number or string")
        fields["inputs"] = value
    for name, value in [
        *((k, fields[k]) for k in ("instruction", "verifier", "solution")),
        *((f"failure_case[{i}]", c) for i, c in enumerate(cases)),
    ]:
        if not value.strip():
            raise ParseError("empty_field", name)
        if len(value) > MAX_FIELD_CHARS:
            raise ParseError("field_too_long", f"{name} has {len(value)} characters")
    return fields


def parse_challenger_output(
    text: str, env: str, env_config: dict, provenance: dict | None = None, allow_inputs: bool = True
) -> ParseResult:
    """Challenger text -> ParseResult(task or None, reason). `allow_inputs=False` (challenger.inputs off) refuses
    an `<inputs>` tag: the task's numbers must then be in its text, as in the benchmarks."""
    try:
        fields = parse_fields(text)
    except ParseError as exc:
        return ParseResult(None, exc.reason, exc.detail)
    if "inputs" in fields and not allow_inputs:
        return ParseResult(None, "inputs_disabled", "write the task's values into its text (challenger.inputs=false)")
    env_config = dict(env_config)
    if "inputs" in fields:
        env_config["inputs"] = fields["inputs"]
    task = CaTTask(
        id=task_id(env, instance_key(fields["instruction"], fields.get("inputs")), fields["verifier"]),
        env=env,
        env_config=env_config,
        instruction=fields["instruction"],
        verifier=fields["verifier"],
        solution=fields["solution"],
        failure_cases=fields["failure_cases"],
        provenance=dict(provenance or {}),
    )
    return ParseResult(task, "parsed")


def format_task(task: CaTTask) -> str:
    """The inverse of parsing: a record in the challenger's tag format (used for prompts' examples and warm start)."""
    parts = [
        "<task>",
        f"<instruction>{task.instruction}</instruction>",
        *([f"<inputs>{json.dumps(task.env_config['inputs'])}</inputs>"] if task.env_config.get("inputs") else []),
        f"<evaluation_function>\n{task.verifier}\n</evaluation_function>",
        f"<solution>\n{task.solution}\n</solution>",
        *(f"<failure_case>\n{case}\n</failure_case>" for case in task.failure_cases),
        "</task>",
    ]
    return "\n".join(parts)


def nothing_kept_hint(iteration: int, proposed: int, parsed: int, reasons: dict[str, int]) -> str:
    """What to tell the user when an iteration's filter kept no task: the commonest rejections, and the likely fix
    when most proposals did not even parse (a challenger that cannot write the format yet)."""
    top = ", ".join(f"{reason} x{count}" for reason, count in Counter(reasons).most_common(3))
    if proposed and parsed * 2 <= proposed:
        fix = (
            "most proposals did not parse, so the challenger cannot write the <task> format yet: warm-start it longer "
            "(warmstart.epochs, warmstart.challenger_transcripts) or start from a stronger model.path; when "
            "unclosed_tag leads, check that challenger.max_tokens leaves room for the whole task"
        )
    else:
        fix = f"each verdict's detail is in iter_{iteration:03d}/checks.jsonl"
    return (
        f"iteration {iteration}: none of {proposed} proposals reached the executor ({top or 'no reasons'}), so it "
        f"trains on nothing; {fix}"
    )
