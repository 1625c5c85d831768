"""Seeded generators of Code-as-Task records for the `calculation` domains, good and deliberately flawed.

Every generated task comes with what the warm start needs to script both roles around it:
- `task`: the CaTTask (instruction, env_config {"domain", "inputs"}, verifier, solution, failure cases);
- `executor_code`: the executor's one code action, the solution itself (setting `answer` ends the episode);
- `explore_code`: the challenger's exploration action (the solution with its inputs written out, printing the
  result).

Verifiers recompute the expected answer from `state["inputs"]` (families.py), so no value is ever copied.
Flawed variants (`FLAWS`) are what the sandbox filter must reject, each with its expected check reason.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..envs.calculation.tools import PURE_TOOLS
from ..tasks.record import CaTTask, instance_key, task_id
from .families import DECODER, DNA, FAMILIES, FAMILY_NAMES, TRADE, Spec

GENERATOR_DOMAINS = (TRADE, DECODER, DNA)

# flaw -> the check reason the sandbox must give it (tasks/check_rule.py)
FLAWS = {
    "lenient_verifier": "failure_case_passed",  # accepts anything, so the failure cases pass
    "wrong_constant": "solution_rejected",  # the expected value is off, so the solution fails
    "no_failure_cases": "no_failure_cases",
    "syntax_error": "verifier_syntax_error",
}
NUMBER_TOLERANCE = 0.01
PRINT_RESULT = "print(answer)"


@dataclass
class GeneratedTask:
    task: CaTTask
    family: str
    flaw: str | None  # None for a good task, else a key of FLAWS
    expected_reason: str  # "kept" or FLAWS[flaw]
    # calculation: the executor's one code action, and the challenger's exploration program
    executor_code: str = ""
    explore_code: str = ""
    value: object = field(default=None, repr=False)  # the solution's answer, computed on the host
    # world environments (scripted.py): the challenger's exploration actions, the executor's dialogue (steps of
    # scripted.STEP_KINDS) and the challenger episode id whose discovery seed the exploration was run with
    explore_actions: list[str] = field(default_factory=list)
    executor_script: list[tuple[str, str]] = field(default_factory=list)
    episode_id: str = ""


# ------------------------------------------------------------------------------------------- assembling
def run_program(domain: str, code: str, inputs: dict):
    """The program's `answer` on the host (our own generated code only; the sandbox checks it again)."""
    namespace: dict = {**PURE_TOOLS[domain], **inputs}
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


def verifier_source(kind: str, expected: str) -> str:
    """evaluate(state, answer): the answer against `expected`, recomputed from the task's inputs."""
    if kind == "number":
        return (
            'def evaluate(state, answer):\n    i = state["inputs"]\n    try:\n'
            f"        return abs(float(answer) - ({expected})) < {NUMBER_TOLERANCE}\n"
            "    except (TypeError, ValueError):\n        return False"
        )
    return f'def evaluate(state, answer):\n    i = state["inputs"]\n    return str(answer).strip() == {expected}'


def _expected_value(spec: Spec):
    return eval(spec.expected, {"i": dict(spec.inputs)})  # noqa: S307 - our own family expression


def _flawed(spec: Spec, flaw: str) -> tuple[str, list[str]]:
    """(verifier, failure cases) of the flawed variant."""
    failures = ["\n".join(lines) for lines in spec.failures]
    if flaw == "lenient_verifier":
        return "def evaluate(state, answer):\n    return True", failures
    if flaw == "wrong_constant":
        off = f"({spec.expected}) + 1" if spec.kind == "number" else f'({spec.expected}) + "s"'
        return verifier_source(spec.kind, off), failures
    if flaw == "no_failure_cases":
        return verifier_source(spec.kind, spec.expected), []
    if flaw == "syntax_error":
        return verifier_source(spec.kind, spec.expected).replace(
            "def evaluate(state, answer):", "def evaluate(state, answer)"
        ), failures
    raise ValueError(f"unknown flaw {flaw!r}; choose one of {sorted(FLAWS)}")


def assemble(spec: Spec, flaw: str | None = None, max_failure_cases: int = 3) -> GeneratedTask:
    """A Spec -> GeneratedTask with at most `max_failure_cases` failure cases (at least two, each checked on the
    host to really differ from the solution); raises ValueError when fewer than two differ or when the family's
    verifier expression disagrees with its solution."""
    solution = "\n".join(spec.steps)
    value = run_program(spec.domain, solution, spec.inputs)
    if value is None or not _same(spec.kind, value, _expected_value(spec)):
        raise RuntimeError(
            f"{spec.family}: the solution's answer {value!r} is not the expected {_expected_value(spec)!r}"
        )
    failures = [
        lines
        for lines in spec.failures
        if not _same(spec.kind, run_program(spec.domain, "\n".join(lines), spec.inputs), value)
    ]
    if len(failures) < 2:
        raise ValueError(f"{spec.family}: fewer than two failure cases differ from the solution")
    spec = dataclasses.replace(spec, failures=failures[: max(2, max_failure_cases)])
    if flaw is None:
        verifier, cases = verifier_source(spec.kind, spec.expected), ["\n".join(lines) for lines in spec.failures]
    else:
        verifier, cases = _flawed(spec, flaw)
    task = CaTTask(
        id=task_id("calculation", instance_key(spec.instruction, spec.inputs), verifier),
        env="calculation",
        env_config={"domain": spec.domain, "inputs": dict(spec.inputs)},
        instruction=spec.instruction,
        verifier=verifier,
        solution=solution,
        failure_cases=cases,
        provenance={"generator": spec.family, "flaw": flaw},
    )
    literals = [f"{name} = {value!r}" for name, value in spec.inputs.items()]
    return GeneratedTask(
        task=task,
        family=spec.family,
        flaw=flaw,
        expected_reason=FLAWS[flaw] if flaw else "kept",
        executor_code=solution,
        explore_code="\n".join([*literals, *spec.steps, PRINT_RESULT]),
        value=value,
    )


def draw_distinct(
    n: int,
    rng: random.Random,
    flawed_rate: float,
    propose: Callable[[int, int], tuple[str, object] | None],
    build: Callable[[object, str | None], GeneratedTask],
    what: str,
) -> list[GeneratedTask]:
    """`n` generated tasks with distinct keys, a fraction `flawed_rate` of them flawed (the kinds of FLAWS in turn).

    `propose(count, attempt)` draws a candidate from `rng` and returns (key, candidate), or None to draw again;
    `build(candidate, flaw)` makes it a GeneratedTask, or raises ValueError to draw again."""
    if not 0.0 <= flawed_rate <= 1.0:
        raise ValueError(f"flawed_rate={flawed_rate} must be within [0, 1]")
    flaws = list(FLAWS)
    out: list[GeneratedTask] = []
    seen: set[str] = set()
    attempts = flawed = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise ValueError(f"could not draw {n} distinct tasks from {what}; ask for fewer")
        proposal = propose(len(out), attempts)
        if proposal is None or proposal[0] in seen:
            continue
        key, candidate = proposal
        flaw = flaws[flawed % len(flaws)] if rng.random() < flawed_rate else None
        try:
            generated = build(candidate, flaw)
        except ValueError:
            continue
        flawed += flaw is not None
        seen.add(key)
        out.append(generated)
    return out


def generate_tasks(
    n: int,
    seed: int,
    domains: tuple[str, ...] | list[str] = (TRADE,),
    flawed_rate: float = 0.0,
    max_failure_cases: int = 3,
    families: list[str] | tuple[str, ...] | None = None,
) -> list[GeneratedTask]:
    """`n` tasks drawn from the families of `domains` (round robin over domains, random family), a fraction
    `flawed_rate` of them flawed (kinds in turn); `families` (names of FAMILY_NAMES), when given, keeps only
    tasks of those families. Deterministic in all arguments; every (instruction, inputs) pair is distinct."""
    unknown = [d for d in domains if d not in FAMILIES]
    if unknown or not domains:
        raise ValueError(f"unknown or no generator domain(s) {unknown}; choose from {list(FAMILIES)}")
    allowed = None if families is None else set(families)
    if allowed is not None:
        known = {name for d in domains for name in FAMILY_NAMES[d]}
        if not allowed or allowed - known:
            raise ValueError(f"families {sorted(allowed - known)} are not families of {list(domains)}: {sorted(known)}")
        domains = [d for d in domains if allowed & set(FAMILY_NAMES[d])]
    rng = random.Random(f"warmstart-tasks-{seed}")

    def propose(count: int, _attempt: int) -> tuple[str, Spec] | None:
        spec = rng.choice(FAMILIES[domains[count % len(domains)]])(rng)
        if allowed is not None and spec.family not in allowed:
            return None
        return instance_key(spec.instruction, spec.inputs), spec

    return draw_distinct(
        n, rng, flawed_rate, propose, lambda spec, flaw: assemble(spec, flaw, max_failure_cases), str(list(domains))
    )
