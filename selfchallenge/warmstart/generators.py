"""Seeded generators of Code-as-Task records for the `calculation` domains, good and deliberately flawed.

Every generated task comes with what the warm start needs to script both roles around it:
- `task`: the CaTTask (instruction, verifier, solution, failure cases; env_config {"domain": ...});
- `executor_code` / `answer`: a code action that solves it with the tools and prints the result, and the final
  answer text that follows the printed value;
- `explore_code`: the challenger's exploration action (the solution run once, printing its result).

Literals are written so that the tiny model can copy them by position: every number in an instruction follows a
space, and the programs bind it as `name = 1200` (also a space before it), so both sides tokenise identically
under byte-level BPE. Results are printed as `result: <repr>`, exactly how verifiers and answers write them.

Flawed variants (`FLAWS`) are what the sandbox filter must reject, each with its expected check reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..envs.calculation.tools import PURE_TOOLS
from ..tasks.record import CaTTask, task_id
from .families import DECODER, DNA, FAMILIES, TRADE, Spec

GENERATOR_DOMAINS = (TRADE, DECODER, DNA)

# flaw -> the check reason the sandbox must give it (tasks/check_rule.py)
FLAWS = {
    "lenient_verifier": "failure_case_passed",  # accepts anything, so the failure cases pass
    "wrong_constant": "solution_rejected",  # the expected value is off, so the solution fails
    "no_failure_cases": "no_failure_cases",
    "syntax_error": "verifier_syntax_error",
}
NUMBER_TOLERANCE = 0.01
PRINT_RESULT = 'print("result:", repr(answer))'


@dataclass
class GeneratedTask:
    task: CaTTask
    family: str
    flaw: str | None  # None for a good task, else a key of FLAWS
    expected_reason: str  # "kept" or FLAWS[flaw]
    executor_code: str
    answer: str  # what follows "Answer: "
    explore_code: str
    value: object = field(default=None, repr=False)  # the solution's answer, computed on the host


# ------------------------------------------------------------------------------------------- assembling
def run_program(domain: str, code: str):
    """The program's `answer` on the host (our own generated code only; the sandbox checks it again)."""
    namespace: dict = dict(PURE_TOOLS[domain])
    try:
        exec(compile(code, "<generated>", "exec"), namespace)  # noqa: S102 - trusted, generated here
    except Exception:  # noqa: BLE001 - a failure case may raise; it then has no answer
        return None
    return namespace.get("answer")


def _same(kind: str, a, b) -> bool:
    if a is None or b is None:
        return a is b
    if kind == "number":
        return abs(float(a) - float(b)) < NUMBER_TOLERANCE
    return str(a) == str(b)


def number_verifier(expected: float | int) -> str:
    return (
        "def evaluate(state, answer):\n    try:\n"
        f"        return abs(float(answer) - {expected!r}) < {NUMBER_TOLERANCE}\n"
        "    except (TypeError, ValueError):\n        return False"
    )


def text_verifier(expected: str) -> str:
    return f'def evaluate(state, answer):\n    return str(answer).strip().strip("\'\\"") == {expected!r}'


def _verifier(kind: str, value) -> str:
    return number_verifier(value) if kind == "number" else text_verifier(str(value))


def _wrong_value(kind: str, value, rng: random.Random):
    if kind == "number":
        return value + rng.choice((1, 2, 5, 10, 100)) * rng.choice((-1, 1))
    other = str(value)[::-1] if str(value)[::-1] != str(value) else str(value) + "x"
    return other


def _flawed(spec: Spec, flaw: str, value, rng: random.Random) -> tuple[str, list[str]]:
    """(verifier, failure cases) of the flawed variant."""
    failures = ["\n".join(spec.setup + lines) for lines in spec.failures]
    if flaw == "lenient_verifier":
        return "def evaluate(state, answer):\n    return True", failures
    if flaw == "wrong_constant":
        return _verifier(spec.kind, _wrong_value(spec.kind, value, rng)), failures
    if flaw == "no_failure_cases":
        return _verifier(spec.kind, value), []
    if flaw == "syntax_error":
        return _verifier(spec.kind, value).replace(
            "def evaluate(state, answer):", "def evaluate(state, answer)"
        ), failures
    raise ValueError(f"unknown flaw {flaw!r}; choose one of {sorted(FLAWS)}")


def assemble(
    spec: Spec, flaw: str | None = None, rng: random.Random | None = None, max_failure_cases: int = 3
) -> GeneratedTask:
    """A Spec -> GeneratedTask with at most `max_failure_cases` failure cases (at least two, each checked on the
    host to really differ from the solution); raises ValueError when fewer than two differ."""
    rng = rng or random.Random(0)
    solution = "\n".join(spec.setup + spec.steps)
    value = run_program(spec.domain, solution)
    if value is None:
        raise ValueError(f"{spec.family}: the solution sets no answer")
    failures = [
        lines
        for lines in spec.failures
        if not _same(spec.kind, run_program(spec.domain, "\n".join(spec.setup + lines)), value)
    ]
    if len(failures) < 2:
        raise ValueError(f"{spec.family}: fewer than two failure cases differ from the solution")
    failures = failures[: max(2, max_failure_cases)]
    spec = Spec(spec.family, spec.domain, spec.instruction, spec.setup, spec.steps, failures, spec.kind)
    if flaw is None:
        verifier, cases = _verifier(spec.kind, value), ["\n".join(spec.setup + lines) for lines in failures]
    else:
        verifier, cases = _flawed(spec, flaw, value, rng)
    env_config = {"domain": spec.domain}
    task = CaTTask(
        id=task_id("calculation", spec.instruction, verifier),
        env="calculation",
        env_config=env_config,
        instruction=spec.instruction,
        verifier=verifier,
        solution=solution,
        failure_cases=cases,
        provenance={"generator": spec.family, "flaw": flaw},
    )
    shown = repr(value)
    printed = "\n".join([*spec.setup, *spec.steps, PRINT_RESULT])
    return GeneratedTask(
        task=task,
        family=spec.family,
        flaw=flaw,
        expected_reason=FLAWS[flaw] if flaw else "kept",
        executor_code=printed,
        answer=shown,
        explore_code=printed,
        value=value,
    )


def generate_tasks(
    n: int,
    seed: int,
    domains: tuple[str, ...] | list[str] = (TRADE,),
    flawed_rate: float = 0.0,
    max_failure_cases: int = 3,
) -> list[GeneratedTask]:
    """`n` tasks drawn from the families of `domains` (round robin over domains, random family), a fraction
    `flawed_rate` of them flawed (kinds in turn). Deterministic in (n, seed, domains, flawed_rate); every
    instruction is distinct."""
    unknown = [d for d in domains if d not in FAMILIES]
    if unknown or not domains:
        raise ValueError(f"unknown or no generator domain(s) {unknown}; choose from {list(FAMILIES)}")
    if not 0.0 <= flawed_rate <= 1.0:
        raise ValueError(f"flawed_rate={flawed_rate} must be within [0, 1]")
    rng = random.Random(f"warmstart-tasks-{seed}")
    flaws = list(FLAWS)
    out: list[GeneratedTask] = []
    seen: set[str] = set()
    attempts = flawed = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise ValueError(f"could not draw {n} distinct tasks from {list(domains)}; ask for fewer")
        domain = domains[len(out) % len(domains)]
        spec = rng.choice(FAMILIES[domain])(rng)
        if spec.instruction in seen:
            continue
        flaw = flaws[flawed % len(flaws)] if rng.random() < flawed_rate else None
        try:
            generated = assemble(spec, flaw, rng, max_failure_cases)
        except ValueError:
            continue
        flawed += flaw is not None
        seen.add(spec.instruction)
        out.append(generated)
    return out
