import json

import pytest

from selfchallenge.eval.metrics import pass_at_k, pass_hat_k, summarize
from selfchallenge.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from selfchallenge.tasks.record import CaTTask, RecordError, load_tasks, save_tasks, save_tasks_jsonl


def test_pass_metrics_by_hand():
    assert pass_at_k(4, 0, 1) == 0 and pass_at_k(4, 1, 4) == 1 and pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6) and pass_hat_k(4, 4, 4) == 1
    out = summarize({"a": [True, False], "b": [False, False]}, ks=(2,))
    assert out["pass@1"] == 0.25 and out["pass@2"] == 0.5 and out["pass^2"] == 0
    with pytest.raises(ValueError):
        pass_at_k(1, 1, 2)


def _task(i):
    return CaTTask(
        f"t{i}",
        "retail",
        {"seed": i, "nested": {"a": [1]}},
        "do",
        "def evaluate(s, a):\n  return True",
        "answer = 1",
        ["answer = 2"],
        {"iteration": i},
    )


def test_tasks_round_trip_jsonl_and_dataset(tmp_path):
    tasks = [_task(0), _task(1)]
    save_tasks_jsonl(str(tmp_path / "t.jsonl"), tasks)
    save_tasks(str(tmp_path / "ds"), tasks)
    assert load_tasks(str(tmp_path / "t.jsonl")) == tasks
    assert load_tasks(str(tmp_path / "ds")) == tasks


def test_bad_records_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    row = _task(0).to_dict()
    del row["verifier"]
    path.write_text(json.dumps(_task(1).to_dict()) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:2: missing field\(s\) \['verifier'\]"):
        load_tasks(str(path))
    path.write_text("{not json\n")
    with pytest.raises(RecordError, match="bad.jsonl:1: not valid JSON"):
        load_tasks(str(path))


def test_trajectory_round_trip_and_length_check(tmp_path):
    t = Trajectory(
        "t/0",
        "t",
        "executor",
        "calculation",
        [1, 2],
        [3, 4, 5],
        [1, 0, 1],
        [-0.5, 0.0, -1.25],
        1.0,
        "answered",
        messages=[{"role": "user", "content": "hi"}],
        info={"answer": "42"},
    )
    save_trajectories(str(tmp_path / "tr"), [t])
    (back,) = load_trajectories(str(tmp_path / "tr"))
    assert back == t and back.group_id == "t" and back.num_sampled_tokens == 2
    with pytest.raises(ValueError, match="same length"):
        Trajectory("x", "x", "executor", "calculation", [1], [2, 3], [1], [0.0, 0.0], 0.0, "answered")


def test_empty_datasets_round_trip(tmp_path):
    save_tasks(str(tmp_path / "t"), [])
    save_trajectories(str(tmp_path / "tr"), [])
    assert load_tasks(str(tmp_path / "t")) == [] and load_trajectories(str(tmp_path / "tr")) == []


def test_a_metrics_line_torn_by_a_crash_does_not_swallow_the_next_record(tmp_path):
    from selfchallenge.tracking import MetricsLogger, read_metrics

    logger = MetricsLogger(str(tmp_path))
    logger.log(0, "propose", {"parsed": 1})
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"time": 1, "iteration": 0, "stage": "che')  # a full disk cut this write
    resumed = MetricsLogger(str(tmp_path))
    resumed.log(0, "check", {"kept": 2})
    assert [(row["stage"], row.get("parsed", row.get("kept"))) for row in read_metrics(str(tmp_path))] == [
        ("propose", 1),
        ("check", 2),
    ]
