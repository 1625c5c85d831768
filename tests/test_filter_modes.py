"""challenger.filter: the paper's Code-as-Task ablation, decided host-side from each check's reason."""

from __future__ import annotations

import pytest

from selfchallenge.tasks.check_rule import FUNNEL_STAGES, INFRA_ERROR, NOT_CHECKED, REASONS, funnel_counts
from selfchallenge.tasks.filter_modes import FILTER_STAGE, deciding_stage, reaches_executor

MODES = ("instruction", "verifier_runs", "solution_passes", "full")


@pytest.mark.parametrize(
    ("reason", "kept_by"),
    [
        ("verifier_syntax_error", {"instruction"}),
        ("verifier_bad_return", {"instruction"}),
        ("solution_rejected", {"instruction", "verifier_runs"}),  # infeasible task: the verifier runs
        ("solution_timeout", {"instruction", "verifier_runs"}),
        ("failure_case_passed", {"instruction", "verifier_runs", "solution_passes"}),  # lenient verifier
        ("no_failure_cases", {"instruction", "verifier_runs", "solution_passes"}),
        ("kept", set(MODES)),
        (INFRA_ERROR, {"instruction"}),  # no verdict on the task: only the mode that ignores the check keeps it
    ],
)
def test_each_mode_keeps_the_tasks_that_reached_its_stage(reason, kept_by):
    assert {mode for mode in MODES if reaches_executor({"reason": reason}, mode)} == kept_by


def test_modes_are_nested_and_their_counts_are_the_funnel_stages():
    reasons = [r for r in REASONS for _ in range(2)]  # every reason code, twice
    funnel = funnel_counts(reasons)
    for reason in REASONS:
        kept = [reaches_executor({"reason": reason}, mode) for mode in MODES]
        assert kept == sorted(kept, reverse=True), reason  # once a mode drops a task, stricter ones do too
    for mode in MODES[1:]:
        kept = sum(reaches_executor({"reason": r}, mode) for r in reasons)
        assert kept == funnel[deciding_stage(mode)] > 0, mode
    usable = [r for r in reasons if r not in NOT_CHECKED]  # a world that cannot be used reaches no executor
    assert sum(reaches_executor({"reason": r}, "instruction") for r in reasons) == len(usable)
    assert deciding_stage("instruction") == "parsed" and deciding_stage("full") == FUNNEL_STAGES[-1]
    assert set(FILTER_STAGE) == set(MODES)
    with pytest.raises(ValueError, match="challenger.filter='strict'"):
        reaches_executor({"reason": "kept"}, "strict")


def test_a_task_whose_world_cannot_be_used_reaches_no_executor_in_any_mode():
    from selfchallenge.tasks.check_rule import NOT_CHECKED
    from selfchallenge.tasks.filter_modes import FILTER_STAGE, reaches_executor

    for reason in NOT_CHECKED:
        assert not any(reaches_executor({"reason": reason}, mode) for mode in FILTER_STAGE), reason
    assert reaches_executor({"reason": "infra_error"}, "instruction")  # nothing was decided about that one
