"""The paper's Code-as-Task ablation as filter modes (`challenger.filter`): which stage decides what the executor
gets. The sandbox check always runs the whole rule (check_rule.py), so the funnel is reported the same way in
every mode; the mode only chooses, host-side from the verdict's reason, how far a task must have got:

    instruction       every parsed task (an instruction, and whatever verifier came with it)
    verifier_runs     + its verifier compiles, defines `evaluate` and runs on the example solution's result
    solution_passes   + the example solution passes it
    full              + every failure case fails it (the paper's filter; the default)

Reward is always the task's own verifier on the executor's final state and answer, in every mode. So under
`instruction` a task whose verifier does not even run gives reward 0 to all its k executor samples: it costs
rollouts but teaches nothing under group baselines (all-equal rewards -> zero advantage) and adds no successes to
RFT; the tasks that can mislead are those whose verifier runs but is wrong (infeasible: nothing passes; lenient: a
wrong solve earns 1), which is what the later stages remove.
"""

from __future__ import annotations

from .check_rule import FUNNEL_STAGES, INFRA_ERROR, NOT_CHECKED, stage_of

# mode -> the funnel stage a task must have reached (None: none, parsing is enough)
FILTER_STAGE: dict[str, str | None] = {
    "instruction": None,
    "verifier_runs": FUNNEL_STAGES[0],
    "solution_passes": FUNNEL_STAGES[1],
    "full": FUNNEL_STAGES[2],
}


def reaches_executor(check: dict, mode: str) -> bool:
    """Whether a checked task passes the filter `mode`. An infra error decides nothing about the task, so it is
    kept only where the check does not matter (`instruction`); a task whose world cannot be used here (a
    NOT_CHECKED reason: a data folder outside the roots, an env_config no environment accepts) never is: no
    executor session could open it."""
    if mode not in FILTER_STAGE:
        raise ValueError(f"challenger.filter={mode!r} is not one of {list(FILTER_STAGE)}")
    required = FILTER_STAGE[mode]
    reason = check.get("reason")
    if reason in NOT_CHECKED:
        return False
    if required is None:
        return True
    if reason == INFRA_ERROR or reason is None:
        return False
    stage = stage_of(reason)
    return stage is not None and FUNNEL_STAGES.index(stage) >= FUNNEL_STAGES.index(required)


def deciding_stage(mode: str) -> str:
    """The funnel stage whose count is the number of tasks the mode keeps (before deduplication)."""
    return FILTER_STAGE[mode] or "parsed"
