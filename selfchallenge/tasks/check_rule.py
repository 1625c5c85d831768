"""The Code-as-Task filter (the paper's rule) and its reason codes. Stdlib only: the sandbox worker imports it.

A task is kept only if
  1. the verifier compiles, defines a callable `evaluate`, and runs;
  2. the example solution runs cleanly and `evaluate(state, answer)` returns True on its final state and answer;
  3. there are at least `min_failure_cases` failure cases and `evaluate` returns False on every one of them.
     A failure case that raises still leaves a state and an answer (whatever it had set), and those are judged:
     the verifier must say False. A failure case that times out or crashes leaves nothing to judge, so it
     disqualifies the task (otherwise `while True: pass` would make any lenient verifier look strict).
`evaluate` must return a real bool; anything else disqualifies the task (verifier_bad_return /
failure_case_verifier_error). The reason is the first disqualifying result in that order.

Every program that can matter runs before the verifier judges anything (failure cases only when the solution
ran cleanly, up to the first that leaves nothing to judge), then the verifier judges each result in a random
order (`random.SystemRandom`): a failure case cannot tell the verifier "this one is me" through anything that
outlives it, since every verifier call sees the same aftermath of all programs, and a verifier cannot count its
way to the solution's turn. The process mechanics (a fresh environment per program, the verifier in a fresh
process that only receives JSON) live in the worker; this module only decides, from the results it is handed.

Funnel: every reason maps to the furthest stage the task reached (`stage_of`), so yield statistics read like the
paper's: verifier runs -> solution passes -> failure cases fail (= kept). `infra_error` is not a verdict on the
task, and the NOT_CHECKED reasons (a record whose environment cannot be used here) were never judged: both are
left out of the funnel and counted apart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

KEPT = "kept"
INFRA_ERROR = "infra_error"

# reason code -> what it means. Grouped by the stage the task reached before it was stopped.
REASONS: dict[str, str] = {
    # reached nothing: the verifier itself is unusable
    "verifier_syntax_error": "the verifier does not compile",
    "verifier_no_evaluate": "the verifier does not define a callable `evaluate`",
    "verifier_error": "the verifier raised or crashed (loading it, or evaluating the solution's result)",
    "verifier_timeout": "the verifier overran its deadline (loading it, or evaluating the solution's result)",
    "verifier_bad_return": "evaluate(...) on the solution's result returned something other than a bool",
    # reached `verifier_runs`: the verifier is usable, the solution is not
    "solution_syntax_error": "the example solution does not compile",
    "solution_error": "the example solution raised",
    "solution_timeout": "the example solution overran its deadline",
    "solution_crashed": "the example solution's process died or its result was over the size limit",
    "solution_rejected": "the verifier returned False on the example solution",
    # reached `solution_passes`: the failure cases do not show that the verifier is strict
    "no_failure_cases": "fewer failure cases than min_failure_cases",
    "failure_case_syntax_error": "a failure case does not compile",
    "failure_case_timeout": "a failure case overran its deadline (nothing left to judge)",
    "failure_case_crashed": "a failure case's process died or its result was over the size limit",
    "failure_case_verifier_error": "on a failure case, the verifier raised, timed out, crashed or returned a non-bool",
    "failure_case_passed": "the verifier returned True on a failure case (it is too lenient)",
    # reached the end
    KEPT: "the verifier runs, the solution passes and every failure case fails",
    # not a verdict on the task
    INFRA_ERROR: "the sandbox failed twice while checking (infrastructure fault, not the task's)",
    # not checked: the record asks for an environment the operator does not provide
    "data_dir_not_allowed": "env_config.data_dir is outside the data roots the operator mounts (--data-root)",
    "data_dir_missing": "env_config.data_dir does not exist",
    "bad_env_config": "the record's env or env_config cannot be built in the sandbox (unknown env, bad keys ...)",
}
NOT_CHECKED = ("data_dir_not_allowed", "data_dir_missing", "bad_env_config")

# The funnel, in order; `stage_of` returns one of these or None.
FUNNEL_STAGES = ("verifier_runs", "solution_passes", "failures_fail")

_STAGE_BY_PREFIX = (
    ("verifier_", None),
    ("solution_", "verifier_runs"),
    ("failure_case_", "solution_passes"),
    ("no_failure_cases", "solution_passes"),
    (KEPT, "failures_fail"),
)

# run_program(role, index, code) -> ProgramResult dict with at least: status, answer, state, error, error_type,
# syntax_error. run_verifier(state, answer, load_only) -> dict with: status, phase, verdict, error.
RunProgram = Callable[[str, int, str], dict]
RunVerifier = Callable[[Any, Any, bool], dict]


def stage_of(reason: str) -> str | None:
    """The furthest funnel stage a task with this reason reached (None: not even `verifier_runs`)."""
    if reason not in REASONS:
        raise ValueError(f"unknown check reason {reason!r}; known reasons: {sorted(REASONS)}")
    if reason == INFRA_ERROR or reason in NOT_CHECKED:
        return None
    for prefix, stage in _STAGE_BY_PREFIX:
        if reason.startswith(prefix):
            return stage
    raise AssertionError(f"reason {reason!r} has no stage")  # every REASONS key matches a prefix above


def funnel_counts(reasons: Iterable[str]) -> dict[str, int]:
    """Yield statistics: how many checked tasks reached each stage (cumulative), plus infra errors and records
    that could not be checked apart."""
    counts = {"checked": 0, **{stage: 0 for stage in FUNNEL_STAGES}, INFRA_ERROR: 0, "not_checked": 0}
    for reason in reasons:
        if reason == INFRA_ERROR:
            counts[INFRA_ERROR] += 1
            continue
        if reason in NOT_CHECKED:
            counts["not_checked"] += 1
            continue
        counts["checked"] += 1
        stage = stage_of(reason)
        if stage is not None:
            for reached in FUNNEL_STAGES[: FUNNEL_STAGES.index(stage) + 1]:
                counts[reached] += 1
    return counts


def _summary(text: str | None, limit: int = 300) -> str:
    """The last non-empty line of an error text (a traceback's exception line), cut to `limit` characters."""
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last[:limit]


def _verifier_failure(verifier: dict, load_only: bool, on_failure_case: bool) -> tuple[str, str] | None:
    """(reason, detail) when the verifier did not load or did not return a bool; None when it did its job.

    `phase` says where an error happened: compile, load (module body), lookup (no callable `evaluate`), call
    (evaluate raised) or return (evaluate returned a non-bool); timeouts and crashes carry no phase.
    """
    status, phase, verdict = verifier.get("status"), verifier.get("phase"), verifier.get("verdict")
    if status == "ok" and (load_only or isinstance(verdict, bool)):
        return None
    error = _summary(verifier.get("error"))
    if phase == "compile":
        reason, detail = "verifier_syntax_error", error
    elif phase == "lookup":
        reason, detail = "verifier_no_evaluate", error or "no callable `evaluate` defined"
    elif status == "timeout":
        reason, detail = "verifier_timeout", "the verifier overran its deadline"
    elif phase == "return" or status == "ok":
        reason, detail = "verifier_bad_return", error or f"evaluate returned {type(verdict).__name__}, not a bool"
    elif status == "error":
        where = "loading the verifier" if phase == "load" else "evaluate(...)"
        reason, detail = "verifier_error", f"{where} raised: {error}"
    else:  # crashed / output_limit
        reason, detail = "verifier_error", f"the verifier's process ended badly ({status}) {error}".strip()
    if on_failure_case:
        return "failure_case_verifier_error", detail
    return reason, detail


def not_checked(reason: str, detail: str) -> dict:
    """The verdict for a record that was never run (infra_error, or a NOT_CHECKED reason)."""
    if reason != INFRA_ERROR and reason not in NOT_CHECKED:
        raise ValueError(f"{reason!r} is a verdict of the rule, not a reason to skip a check")
    return {"kept": False, "reason": reason, "stage": None, "detail": detail, "timings": {}, "runs": []}


def _leaves_nothing_to_judge(case: dict) -> bool:
    return bool(case.get("syntax_error")) or case.get("status") not in ("ok", "error")


def run_check(
    task: dict,
    min_failure_cases: int,
    run_program: RunProgram,
    run_verifier: RunVerifier,
    clock: Callable[[], float] = time.monotonic,
    shuffle: Callable[[list], None] = random.SystemRandom().shuffle,  # the order of the verifier calls
) -> dict:
    """Apply the rule to one task. Returns {kept, reason, stage, detail, timings, runs}.

    `runs` has one entry per program that ran: {role, index, status, error, verdict, verifier_status,
    verifier_error}; `timings` has seconds per phase (solution_s, verifier_s, failure_cases_s) and total_s.
    """
    started = clock()
    timings = {"solution_s": 0.0, "verifier_s": 0.0, "failure_cases_s": 0.0}

    def timed(phase: str, fn: Callable[[], dict]) -> dict:
        t0 = clock()
        try:
            return fn()
        finally:
            timings[phase + "_s"] += clock() - t0

    # 1. Every program that can matter, before any verifier call.
    solution = timed("solution", lambda: run_program("solution", 0, task["solution"]))
    solution_ok = solution.get("status") == "ok"
    codes = task.get("failure_cases") or []
    cases: list[dict] = []
    if solution_ok and len(codes) >= min_failure_cases:
        for index, code in enumerate(codes):
            cases.append(
                timed("failure_cases", lambda code=code, index=index: run_program("failure_case", index, code))
            )
            if _leaves_nothing_to_judge(cases[-1]):
                break  # the verdict is settled here whatever the verifier says about later ones

    # 2. The verifier on every result that needs judging (load-only when the solution left nothing to judge, so
    # that a broken verifier is reported as such), in an order the programs cannot predict.
    judged = [(-1, solution, not solution_ok)]  # (-1: the solution, i: failure case i, its result, load only)
    judged += [(index, case, False) for index, case in enumerate(cases) if not _leaves_nothing_to_judge(case)]
    shuffle(judged)
    verdicts: dict[int, dict] = {}
    for key, program, load_only in judged:
        verdicts[key] = timed(
            "verifier", lambda p=program, lo=load_only: run_verifier(p.get("state"), p.get("answer"), lo)
        )
    reason, detail = _decide(solution, cases, verdicts, len(codes), min_failure_cases)

    timings["total_s"] = clock() - started
    runs = [_run_entry("solution", 0, solution, verdicts[-1] if solution_ok else None)]
    runs += [_run_entry("failure_case", index, case, verdicts.get(index)) for index, case in enumerate(cases)]
    return {
        "kept": reason == KEPT,
        "reason": reason,
        "stage": stage_of(reason),
        "detail": detail,
        "timings": {name: round(value, 6) for name, value in timings.items()},
        "runs": runs,
    }


def _decide(solution: dict, cases: list[dict], verdicts: dict, given: int, min_failure_cases: int) -> tuple[str, str]:
    """The rule, in its order, over every result: the first disqualifying one is the reason."""
    solution_ok = solution.get("status") == "ok"
    failure = _verifier_failure(verdicts[-1], not solution_ok, on_failure_case=False)
    if failure:
        return failure
    if not solution_ok:
        status = solution.get("status")
        detail = _summary(solution.get("error")) or str(status)
        if solution.get("syntax_error"):
            return "solution_syntax_error", detail
        if status == "error":
            return "solution_error", detail
        if status == "timeout":
            return "solution_timeout", "overran its deadline"
        return "solution_crashed", detail
    if verdicts[-1]["verdict"] is not True:
        return "solution_rejected", "evaluate(...) returned False on the example solution"
    if given < min_failure_cases:
        return "no_failure_cases", f"{given} failure case(s); at least {min_failure_cases} required"
    for index, case in enumerate(cases):
        prefix = f"failure case {index}: "
        if case.get("syntax_error"):
            return "failure_case_syntax_error", prefix + _summary(case.get("error"))
        if case.get("status") == "timeout":
            return "failure_case_timeout", prefix + "overran its deadline"
        if case.get("status") not in ("ok", "error"):
            return "failure_case_crashed", prefix + (_summary(case.get("error")) or str(case.get("status")))
        verdict = verdicts[index]
        failure = _verifier_failure(verdict, load_only=False, on_failure_case=True)
        if failure:
            return failure[0], prefix + failure[1]
        if verdict["verdict"] is True:
            return "failure_case_passed", prefix + "evaluate(...) returned True"
    return KEPT, f"solution passes, {len(cases)} failure case(s) fail"


def _run_entry(role: str, index: int, program: dict, verifier: dict | None) -> dict:
    return {
        "role": role,
        "index": index,
        "status": program.get("status"),
        "error": _summary(program.get("error")) or None,
        "verdict": verifier.get("verdict") if verifier else None,
        "verifier_status": verifier.get("status") if verifier else None,
        "verifier_error": _summary(verifier.get("error")) or None if verifier else None,
    }
