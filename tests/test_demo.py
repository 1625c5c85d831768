"""The learning demonstration, shortened: warm start (real transcripts through the Docker sandbox, DeepSpeed SFT),
then the self-challenging loop (vLLM challenger and executor, sandbox filter, RFT, weight sync) and the held-out
evaluation before and after, per split. The transfer split (questions the executor's warm start never showed it)
must rise and the retention split (questions it was shown) must not fall by more than 0.05 (docs/demo.md)."""

from __future__ import annotations

import json
import os

import pytest

from selfchallenge.config import ConfigError, load_config
from selfchallenge.demo import covered_heldout, heldout_by_split, heldout_leaks, loop_overrides, run_demo, summarize
from selfchallenge.tasks.record import CaTTask, save_tasks_jsonl, write_jsonl

pytestmark = pytest.mark.docker


def test_demo_refuses_the_keys_it_sets_itself(tmp_path):
    with pytest.raises(ConfigError, match="model.path"):
        run_demo(None, ["model.path=/elsewhere"], [0], str(tmp_path))
    with pytest.raises(ConfigError, match="--seeds"):
        run_demo(None, [], [], str(tmp_path))


def test_the_default_demo_replays_its_own_warm_start_and_a_users_setting_wins(tmp_path):
    model = str(tmp_path / "model")
    os.makedirs(model)
    open(os.path.join(model, "heldout.jsonl"), "w").close()
    cfg = load_config(None, loop_overrides(True, ["warmstart.seed=3", "iterations=1"], model, 3, str(tmp_path)))
    assert cfg.learner.replay_from == os.path.join(model, "warmstart_data", "executor_trajectories")
    assert cfg.learner.replay_fraction > 0 and cfg.iterations == 1 and cfg.seed == 3
    assert cfg.eval.heldout_tasks == os.path.join(model, "heldout.jsonl") and cfg.model.path == model
    assert (
        load_config(None, loop_overrides(True, ["learner.replay_fraction=0"], model, 3, "b")).learner.replay_fraction
        == 0
    )
    assert load_config(None, loop_overrides(False, [], model, 3, "b")).learner.replay_from == ""  # a user's config


def test_summary_reports_mean_spread_and_ratio():
    summary = summarize([{"seed": 0, "before": 0.2, "after": 0.5}, {"seed": 1, "before": 0.3, "after": 0.5}])
    assert summary["heldout_pass@1_before"]["mean"] == 0.25 and summary["heldout_pass@1_after"]["std"] == 0.0
    assert summary["ratio_of_means"] == 2.0


def test_kept_mix_weights_heldout_questions_by_how_often_the_loop_trained_on_them(tmp_path):
    def task(task_id, question):
        return CaTTask(task_id, "calculation", {}, question, "def verify(): return True", "answer = 1", [])

    heldout = [task("h1", "convert"), task("h2", "tariff"), task("h3", "lowest")]
    save_tasks_jsonl(str(tmp_path / "heldout.jsonl"), heldout)
    save_tasks_jsonl(str(tmp_path / "iter_000" / "tasks_kept.jsonl"), [task(f"k{i}", "convert") for i in range(3)])
    save_tasks_jsonl(str(tmp_path / "iter_001" / "tasks_kept.jsonl"), [task("k9", "tariff"), task("k8", "unseen")])
    rewards = {"h1": [1, 1, 0, 1], "h2": [0, 0, 0, 0], "h3": [1, 1, 1, 1]}
    rows = [{"set": "heldout", "task_id": t, "reward": r} for t, values in rewards.items() for r in values]
    write_jsonl(str(tmp_path / "eval" / "before.jsonl"), [*rows, {"set": "train", "task_id": "k0", "reward": 1}])
    result = covered_heldout(str(tmp_path), str(tmp_path / "heldout.jsonl"), "before")
    # covered: h1 and h2 (8 episodes, 3 successes); kept_mix: (3 * 0.75 + 1 * 0.0) / 4; "unseen" has no held-out task
    assert result == {
        "covered": 0.375,
        "uncovered": 1.0,
        "covered_episodes": 8,
        "uncovered_episodes": 4,
        "kept_mix": 0.5625,
        "kept_mix_tasks": 4,
    }


def test_heldout_by_split_scores_each_split_on_its_own_tasks(tmp_path):
    def task(task_id, split):
        provenance = {"split": split} if split else {}
        return CaTTask(task_id, "calculation", {}, task_id, "def verify(): return True", "a = 1", [], provenance)

    save_tasks_jsonl(str(tmp_path / "heldout.jsonl"), [task("t1", "transfer"), task("r1", "retention"), task("o", "")])
    rows = [{"set": "heldout", "task_id": t, "reward": r} for t, r in [("t1", 0), ("t1", 1), ("r1", 1), ("o", 0)]]
    write_jsonl(str(tmp_path / "eval" / "iter_001.jsonl"), [*rows, {"set": "train", "task_id": "t1", "reward": 1}])
    result = heldout_by_split(str(tmp_path), str(tmp_path / "heldout.jsonl"), "iter_001")
    # a task without a split (a held-out set from before splits existed) counts as retention
    assert result == {
        "transfer": {"pass@1": 0.5, "episodes": 2, "tasks": 1},
        "retention": {"pass@1": 0.5, "episodes": 2, "tasks": 2},
    }
    families = heldout_by_split(str(tmp_path), str(tmp_path / "heldout.jsonl"), "iter_001", "generator")
    assert families == {"unknown": {"pass@1": 0.5, "episodes": 4, "tasks": 3}}  # no task names a generator
    split_rows = {"before": {"transfer": {"pass@1": 0.1}}, "after": {"transfer": {"pass@1": 0.3}}}
    summary = summarize([{"seed": 0, "before": 0.4, "after": 0.5, "by_split": split_rows}])
    assert summary["by_split"]["transfer"]["ratio_of_means"] == 3.0 and "retention" not in summary["by_split"]


def test_heldout_leaks_count_heldout_instances_the_loop_kept(tmp_path):
    def task(task_id, instruction, inputs):
        return CaTTask(
            task_id, "calculation", {"inputs": inputs}, instruction, "def verify(): return True", "a = 1", []
        )

    heldout = [task("h1", "Convert A", {"x": 1}), task("h2", "Convert A", {"x": 2}), task("h3", "Tariff", {"x": 1})]
    save_tasks_jsonl(str(tmp_path / "heldout.jsonl"), heldout)
    # the same question and values (other id, other spacing) is a leak; the same question with other values is not
    save_tasks_jsonl(str(tmp_path / "iter_000" / "tasks_kept.jsonl"), [task("k1", "Convert  A", {"x": 2})])
    save_tasks_jsonl(str(tmp_path / "iter_001" / "tasks_kept.jsonl"), [task("k2", "Tariff", {"x": 5})])
    leaks = heldout_leaks(str(tmp_path), str(tmp_path / "heldout.jsonl"))
    assert leaks == {"heldout": 3, "kept_instances": 2, "equal_to_kept": 1}


@pytest.mark.timeout(2700)  # ~10 min on an idle 2-core VM; twice that when the machine is shared
@pytest.mark.vllm
@pytest.mark.slow
def test_self_challenging_raises_heldout_success(tmp_path, ray_local):
    # ray_local: the session's Ray (4 logical CPUs); a Ray started by the pipeline here would outlive the test
    # with the machine's 2 CPUs and starve later tests that need more.
    out = str(tmp_path / "demo")
    # make run's warm start (10 epochs) and loop, seed 1, 4 evaluation samples per task, evaluated before and after
    overrides = ["iterations=2", "eval.every=0", "eval.num_samples=4", "sandbox.backend=docker"]
    summary = run_demo(None, overrides, [1], out)
    seed = summary["seeds"][0]
    history = seed["history"]
    assert [row["iteration"] for row in history] == [-1, 1]
    split = seed["by_split"]
    before, after = split["before"], split["after"]
    # the split is what it says: the executor's warm start never showed it the tariff and cheaper-route questions
    # (its challenger's did), so it starts at (nearly) 0 there and well above on the questions it was shown
    assert before["transfer"]["tasks"] > 0 and before["retention"]["tasks"] > 0, split
    assert before["transfer"]["pass@1"] <= 0.05 < before["retention"]["pass@1"], split
    # The executor learns questions its own warm start never showed it, from tasks its challenger wrote: the
    # transfer split rises (measured 0.000 -> 0.467 here; 0.000 -> 0.458 at 8 samples, docs/demo.md), while the
    # questions it was shown do not fall by more than the issue's 0.05 (0.590 -> 0.800). Seed 1 is a seed on which
    # the mechanism works (of the README's 3 full seeds, transfer rose on 0 and 1 and stayed at 0 on 2, whose
    # executor never solved a transfer sample); seeded sampling makes its numbers repeat on one machine, so a
    # change that breaks resampling, replay, RFT or the weight sync fails here.
    assert after["transfer"]["pass@1"] >= before["transfer"]["pass@1"] + 0.2, (split, history)
    assert after["retention"]["pass@1"] >= before["retention"]["pass@1"] - 0.05, (split, history)
    run_dir = os.path.join(out, "seed_1", "run")
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8")]
    kept = [row["funnel"]["to_executor"] for row in metrics if row["stage"] == "check"]
    assert kept and all(count > 0 for count in kept), kept  # the challenger wrote tasks the filter kept
    assert os.path.exists(os.path.join(run_dir, "report.html"))
    # checkpoint.keep_last=1 (demo.yaml): the first iteration's checkpoint went once the second was recorded
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["iter_001"]
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as handle:
        assert json.load(handle)["seeds"][0]["after"] == seed["after"]
