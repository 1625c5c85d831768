"""The Code-as-Task filter rule (selfchallenge/tasks/check_rule.py), driven by scripted program outcomes.

The rule only decides from the results of the programs it is handed, so these tests feed it the outcomes a
sandbox produces (statuses, answers, verdicts) and check every reason code, the order of the checks, the
early stop and the funnel. The same rule running on real sandboxed programs is tested in
test_sandbox_worker.py (every reason reached through a real worker).
"""

from __future__ import annotations

import pytest

from selfchallenge.tasks import check_rule
from selfchallenge.tasks.check_rule import FUNNEL_STAGES, REASONS, funnel_counts, run_check, stage_of

TASK = {
    "env": "calculation",
    "env_config": {},
    "verifier": "V",
    "solution": "S",
    "failure_cases": ["F0", "F1", "F2"],
}


def program(status="ok", answer=None, state=None, error=None, syntax_error=False):
    return {"status": status, "answer": answer, "state": state or {}, "error": error, "syntax_error": syntax_error}


def verdict(value=None, status="ok", phase=None, error=None):
    return {"status": status, "phase": phase, "verdict": value, "error": error}


class Script:
    """Programs answer by their source; the verifier judges `answer == "right"` unless overridden."""

    def __init__(self, programs=None, verifier=None):
        self.programs = {"S": program(answer="right"), **{f"F{i}": program(answer="wrong") for i in range(3)}}
        self.programs.update(programs or {})
        self.verifier = verifier or (lambda state, answer, load_only: verdict(None if load_only else answer == "right"))
        self.calls: list[tuple] = []

    def run_program(self, role, index, code):
        self.calls.append(("program", role, index))
        return self.programs[code]

    def run_verifier(self, state, answer, load_only):
        self.calls.append(("verifier", answer, load_only))
        return self.verifier(state, answer, load_only)


def check(script: Script, task=TASK, min_failure_cases=1):
    return run_check(task, min_failure_cases, script.run_program, script.run_verifier)


def test_good_task_is_kept_with_timings_and_runs():
    script = Script()
    result = check(script)
    assert result["kept"] is True and result["reason"] == "kept" and result["stage"] == "failures_fail"
    assert [(run["role"], run["index"], run["verdict"]) for run in result["runs"]] == [
        ("solution", 0, True),
        ("failure_case", 0, False),
        ("failure_case", 1, False),
        ("failure_case", 2, False),
    ]
    assert set(result["timings"]) == {"solution_s", "verifier_s", "failure_cases_s", "total_s"}
    assert result["timings"]["total_s"] >= result["timings"]["solution_s"]
    # every program first, then the verifier on each result: 4 programs + 4 verifier calls
    assert [call[0] for call in script.calls] == ["program"] * 4 + ["verifier"] * 4


@pytest.mark.parametrize(
    ("verifier_result", "reason"),
    [
        (verdict(status="error", phase="compile", error="SyntaxError: bad"), "verifier_syntax_error"),
        (verdict(status="error", phase="lookup", error="no evaluate"), "verifier_no_evaluate"),
        (verdict(status="error", phase="load", error="NameError: x"), "verifier_error"),
        (verdict(status="error", phase="call", error="KeyError: 'x'"), "verifier_error"),
        (verdict(status="crashed", error="killed by SIGSEGV"), "verifier_error"),
        (verdict(status="timeout"), "verifier_timeout"),
        (verdict(status="error", phase="return", error="evaluate returned str"), "verifier_bad_return"),
        (verdict("yes"), "verifier_bad_return"),  # a non-bool verdict that slipped through is still rejected
    ],
)
def test_verifier_failures_on_the_solution(verifier_result, reason):
    result = check(Script(verifier=lambda *args: verifier_result))
    assert result["reason"] == reason and result["kept"] is False
    assert result["stage"] is None
    assert result["detail"]


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        (program("error", error="  File ...\nSyntaxError: invalid syntax", syntax_error=True), "solution_syntax_error"),
        (program("error", answer="right", error="ZeroDivisionError: division by zero"), "solution_error"),
        (program("timeout"), "solution_timeout"),
        (program("crashed", error="the process was killed by signal SIGSEGV"), "solution_crashed"),
        (program("output_limit"), "solution_crashed"),
        (program(answer="nope"), "solution_rejected"),
    ],
)
def test_solution_failures(solution, reason):
    script = Script(programs={"S": solution})
    result = check(script)
    assert result["reason"] == reason and result["stage"] == "verifier_runs"
    ran_cases = [call for call in script.calls if call[:2] == ("program", "failure_case")]
    if solution["status"] != "ok":
        assert ran_cases == []  # nothing can change the verdict once the solution failed
    else:
        assert len(ran_cases) == 3  # programs run before the verifier judges any of them


def test_failed_solution_still_loads_the_verifier_so_a_broken_verifier_is_blamed():
    script = Script(
        programs={"S": program("error", error="ValueError")},
        verifier=lambda state, answer, load_only: verdict(status="error", phase="compile", error="SyntaxError"),
    )
    result = check(script)
    assert result["reason"] == "verifier_syntax_error"
    assert ("verifier", None, True) in script.calls  # the verifier was only loaded (nothing to judge)


def test_always_true_verifier_is_rejected_by_the_failure_cases():
    result = check(Script(verifier=lambda state, answer, load_only: verdict(None if load_only else True)))
    assert result["reason"] == "failure_case_passed"
    assert result["stage"] == "solution_passes"
    assert result["detail"].startswith("failure case 0")


def test_a_failure_case_that_raises_is_still_judged_on_what_it_left():
    # it set the right answer, then raised: the verifier says True on it -> the verifier is too lenient
    leaky = program("error", answer="right", error="ValueError: late")
    assert check(Script(programs={"F1": leaky}))["reason"] == "failure_case_passed"
    # raising without the right answer: judged False, the task is kept
    assert check(Script(programs={"F1": program("error", answer=None, error="ValueError")}))["kept"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (program("error", error="SyntaxError", syntax_error=True), "failure_case_syntax_error"),
        (program("timeout"), "failure_case_timeout"),
        (program("crashed"), "failure_case_crashed"),
        (program("output_limit"), "failure_case_crashed"),
    ],
)
def test_failure_cases_that_leave_nothing_to_judge(case, reason):
    script = Script(programs={"F1": case})
    result = check(script)
    assert result["reason"] == reason and result["stage"] == "solution_passes"
    assert result["detail"].startswith("failure case 1")
    assert ("program", "failure_case", 2) not in script.calls  # stopped at the first disqualifying result


@pytest.mark.parametrize(
    "bad",
    [
        verdict(status="error", phase="call", error="KeyError"),
        verdict(status="timeout"),
        verdict(status="error", phase="return", error="evaluate returned int"),
        verdict(status="crashed"),
    ],
)
def test_verifier_that_cannot_judge_a_failure_case(bad):
    def verifier(state, answer, load_only):
        return bad if answer == "wrong" else verdict(True)

    assert check(Script(verifier=verifier))["reason"] == "failure_case_verifier_error"


def test_min_failure_cases():
    assert check(Script(), task={**TASK, "failure_cases": []})["reason"] == "no_failure_cases"
    assert check(Script(), task={**TASK, "failure_cases": ["F0"]}, min_failure_cases=3)["reason"] == "no_failure_cases"
    assert check(Script(), task={**TASK, "failure_cases": []}, min_failure_cases=0)["kept"]


def test_stage_mapping_and_funnel():
    assert stage_of("kept") == "failures_fail"
    assert stage_of("failure_case_passed") == stage_of("no_failure_cases") == "solution_passes"
    assert stage_of("solution_rejected") == "verifier_runs"
    assert stage_of("verifier_timeout") is None and stage_of("infra_error") is None
    for reason in REASONS:  # every documented reason maps to a stage (or None)
        assert stage_of(reason) in (None, *FUNNEL_STAGES)
    with pytest.raises(ValueError, match="unknown check reason"):
        stage_of("made_up")
    counts = funnel_counts(["kept", "kept", "failure_case_passed", "solution_error", "verifier_error", "infra_error"])
    assert counts == {
        "checked": 5,
        "verifier_runs": 4,
        "solution_passes": 3,
        "failures_fail": 2,
        "infra_error": 1,
        "not_checked": 0,
    }
    assert funnel_counts(["kept", "data_dir_not_allowed", "data_dir_missing", "bad_env_config"]) == {
        "checked": 1,
        "verifier_runs": 1,
        "solution_passes": 1,
        "failures_fail": 1,
        "infra_error": 0,
        "not_checked": 3,
    }


def test_every_reason_is_documented_and_distinct():
    assert len(REASONS) == len(set(REASONS)) >= 18
    assert all(isinstance(text, str) and text for text in REASONS.values())
    assert check_rule.KEPT in REASONS and check_rule.INFRA_ERROR in REASONS


# --- the order of the verifier calls ------------------------------------------------------------------------
def test_every_program_runs_before_any_verifier_call_and_the_calls_are_shuffled():
    seen_first = set()
    for _ in range(40):  # the default shuffle is random.SystemRandom: the solution is not always judged first
        script = Script()
        assert check(script)["reason"] == "kept"
        kinds = [call[0] for call in script.calls]
        assert kinds == ["program"] * 4 + ["verifier"] * 4
        seen_first.add(script.calls[4][1])  # the answer judged first: "right" (solution) or "wrong"
    assert seen_first == {"right", "wrong"}


@pytest.mark.parametrize("order", ["as_given", "reversed"])
def test_the_reason_does_not_depend_on_the_order_of_the_verifier_calls(order):
    # failure case 0 passes and failure case 2 breaks the verifier: the rule's order says failure_case_passed
    def verifier(state, answer, load_only):
        if answer == "boom":
            return verdict(status="error", phase="call", error="KeyError: 'x'")
        return verdict(answer in ("right", "sneaky"))

    script = Script(programs={"F0": program(answer="sneaky"), "F2": program(answer="boom")}, verifier=verifier)
    shuffle = (lambda items: None) if order == "as_given" else (lambda items: items.reverse())
    result = run_check(TASK, 1, script.run_program, script.run_verifier, shuffle=shuffle)
    assert result["reason"] == "failure_case_passed" and result["detail"].startswith("failure case 0")
    assert [run["verdict"] for run in result["runs"]] == [True, True, False, None]


def test_records_that_cannot_be_checked_have_their_own_reasons_outside_the_funnel():
    for reason in check_rule.NOT_CHECKED:
        assert reason in REASONS and stage_of(reason) is None
        verdict_ = check_rule.not_checked(reason, "why")
        assert verdict_ == {"kept": False, "reason": reason, "stage": None, "detail": "why", "timings": {}, "runs": []}
    with pytest.raises(ValueError, match="verdict of the rule"):
        check_rule.not_checked("solution_rejected", "no")
