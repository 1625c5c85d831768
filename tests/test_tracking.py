"""Experiment trackers (tracking.backends): what each one really wrote, read back from its own files; a tracker
that fails never stops the run; the learner's per-step metrics continue their count across a resume."""

from __future__ import annotations

import glob
import json
import logging
import os
import struct
import sys

import pytest

from selfchallenge import tracking_backends
from selfchallenge.config import ConfigError, load_config, to_dict
from selfchallenge.rollout.trajectory import Trajectory
from selfchallenge.tracking import MetricsLogger, read_metrics, sample_rows

ALL = "tracking.backends=[tensorboard,trackio,wandb,mlflow]"


def _trajectory(i: int, reward: float = 1.0, text: str = "Answer: 3") -> Trajectory:
    return Trajectory(
        id=f"it0/t{i}/0", task_id=f"t{i}", role="executor", env="calculation", prompt_ids=[1], response_ids=[2],
        loss_mask=[1], logprobs=[-0.1], reward=reward, reason="answered",
        messages=[{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": f"q{i}"},
                  {"role": "assistant", "content": text}],
    )  # fmt: skip


def _train(losses: list[float]) -> dict:
    steps = [{"loss": loss, "lr": 1e-5, "grad_norm": 0.5, "tokens": 10.0} for loss in losses]
    return {"loss": sum(losses) / len(losses), "optimizer_steps": float(len(losses)), "per_step": steps}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Every tracker writes under tmp_path: trackio's database (TRACKIO_DIR, read once when trackio is imported,
    so an already imported trackio is repointed too) and W&B's config, cache and artifact staging folders."""
    trackio_dir = tmp_path / "trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(trackio_dir))
    for name, folder in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / folder))
    for module in [m for name, m in sys.modules.items() if name == "trackio" or name.startswith("trackio.")]:
        for attr, path in (("TRACKIO_DIR", trackio_dir), ("MEDIA_DIR", trackio_dir / "media")):
            if hasattr(module, attr):
                monkeypatch.setattr(module, attr, path)
    yield tmp_path
    if sys.modules.get("wandb") is not None:
        sys.modules["wandb"].teardown()  # stops the wandb-core service this process started
        psutil = pytest.importorskip("psutil")
        left = [p.name() for p in psutil.Process().children(recursive=True) if "wandb" in p.name()]
        assert not left, f"wandb processes left running: {left}"


def _wandb_history(path: str) -> list[dict]:
    """The history rows of a W&B offline run file (LevelDB log format: 7-byte file header, 32 KiB blocks of
    records with a 7-byte header (crc, length, type FULL/FIRST/MIDDLE/LAST), each a wandb Record protobuf)."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    rows, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                items = record.history.item  # a key with "/" may come as nested_key parts
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def test_every_backend_records_scalars_tables_and_learner_steps(isolated):
    for package in ("trackio", "wandb", "mlflow", "tensorboard"):
        pytest.importorskip(package)
    run_dir = str(isolated / "run")
    cfg = load_config(None, [ALL, f"run_dir={run_dir}"])
    log = MetricsLogger(run_dir, cfg.tracking, to_dict(cfg))
    assert log.backends == ["tensorboard", "trackio", "wandb", "mlflow"]
    log.log(-1, "eval", {"label": "before", "results": {"heldout": {"pass@1": 0.25}}})
    log.log(0, "rollout", {"mean_reward": 0.5, "end_reasons": {"answered": 3}})
    log.table("samples/executor", sample_rows([_trajectory(0), _trajectory(1, 0.0)], 0, 4), 0)
    log.log(0, "train", _train([2.0, 1.0]))
    log.log(1, "rollout", {"mean_reward": 0.75})
    log.log(1, "train", _train([0.5]))
    log.close()

    # The JSON lines keep everything (per_step too); the report still reads them.
    from selfchallenge.report import summary_rows, write_report

    trains = [row for row in read_metrics(run_dir) if row["stage"] == "train"]
    assert [len(row["per_step"]) for row in trains] == [2, 1]
    assert [row[5] for row in summary_rows(run_dir)[1:]] == ["-", "1.5000", "0.5000"]
    assert os.path.exists(write_report(run_dir))

    # TensorBoard: scalars per iteration and per global optimizer step, the table as text.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(run_dir, "tensorboard"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("learner_step/loss")] == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert [(s.step, s.value) for s in events.Scalars("rollout/mean_reward")] == [(0, 0.5), (1, 0.75)]
    assert "samples/executor/text_summary" in events.Tags()["tensors"]

    # trackio: its SQLite database under TRACKIO_DIR.
    from trackio.sqlite_storage import SQLiteStorage

    assert os.path.exists(isolated / "trackio" / "selfchallenge.db")
    logs = SQLiteStorage.get_logs("selfchallenge", "run")
    assert [(row["step"], row["learner_step/loss"]) for row in logs if "learner_step/loss" in row] == [
        (1, 2.0),
        (2, 1.0),
        (3, 0.5),
    ]
    assert [row["eval/results/heldout/pass@1"] for row in logs if "eval/results/heldout/pass@1" in row] == [0.25]
    (table,) = [row["samples/executor"] for row in logs if "samples/executor" in row]
    assert [r["task_id"] for r in table["_value"]] == ["t0", "t1"]

    # W&B: one offline run under <run_dir>/wandb, its scalars on the iteration / optimizer_step axes.
    (wandb_file,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    history = _wandb_history(wandb_file)
    assert [(r["optimizer_step"], r["learner_step/loss"]) for r in history if "learner_step/loss" in r] == [
        (1, 2.0),
        (2, 1.0),
        (3, 0.5),
    ]
    assert [(r["iteration"], r["rollout/mean_reward"]) for r in history if "rollout/mean_reward" in r] == [
        (0, 0.5),
        (1, 0.75),
    ]
    (table_file,) = glob.glob(os.path.join(os.path.dirname(wandb_file), "files", "media", "table", "samples", "*"))
    assert json.load(open(table_file))["columns"] == ["iteration", "env", "task_id", "reward", "reason", "text"]

    # MLflow: the file store <run_dir>/mlruns; "pass@1" is stored as "pass_1" (MLflow's key alphabet).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri="file:" + os.path.join(run_dir, "mlruns"))
    (run,) = client.search_runs([client.get_experiment_by_name("selfchallenge").experiment_id])
    history = client.get_metric_history(run.info.run_id, "learner_step/loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert run.data.metrics["eval/results/heldout/pass_1"] == 0.25
    assert run.data.params["learner.algorithm"] == "rft" and run.info.status == "FINISHED"
    (artifact,) = glob.glob(
        os.path.join(run_dir, "mlruns", "*", run.info.run_id, "artifacts", "samples", "executor", "*")
    )
    assert os.path.basename(artifact) == "iter_000.json" and len(json.load(open(artifact))["data"]) == 2

    # A rerun of the same run dir continues the MLflow and trackio runs and the optimizer-step count.
    cfg = load_config(None, ["tracking.backends=[trackio,mlflow]", f"run_dir={run_dir}"])
    resumed = MetricsLogger(run_dir, cfg.tracking, to_dict(cfg))
    resumed.log(2, "train", _train([0.25]))
    resumed.close()
    (again,) = client.search_runs([run.info.experiment_id])
    assert again.info.run_id == run.info.run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "learner_step/loss")] == [1, 2, 3, 4]
    assert SQLiteStorage.get_runs("selfchallenge") == ["run"]


class _Recorder:
    name = "tensorboard"
    calls: list = []

    def __init__(self, run_dir, cfg, config_dict):
        pass

    def scalars(self, values, step, axis):
        self.calls.append((axis, step, values))

    def table(self, name, rows, step):
        self.calls.append(("table", step, name))

    def close(self):
        self.calls.append(("closed",))


def test_learner_steps_continue_their_count_after_a_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(tracking_backends.BACKENDS, "tensorboard", _Recorder)
    monkeypatch.setattr(_Recorder, "calls", [])
    cfg = load_config(None, [f"run_dir={tmp_path}"]).tracking  # default: [tensorboard]
    first = MetricsLogger(str(tmp_path), cfg)
    first.log(0, "train", _train([3.0, 2.0]))
    first.log(1, "train", {"skipped": "no data"})
    first.close()
    resumed = MetricsLogger(str(tmp_path), cfg)
    assert resumed.optimizer_step(2) == 2
    resumed.log(2, "train", _train([1.0]))
    steps = [(step, values["learner_step/loss"]) for axis, *rest in _Recorder.calls if axis == "optimizer_step"
             for step, values in [rest]]  # fmt: skip
    assert steps == [(1, 3.0), (2, 2.0), (3, 1.0)]


def test_a_tracker_that_fails_is_skipped_and_the_others_go_on(tmp_path, monkeypatch, caplog):
    class Broken(_Recorder):
        name = "trackio"

        def __init__(self, run_dir, cfg, config_dict):
            raise RuntimeError("database is locked")

    class FailsLater(_Recorder):
        name = "wandb"

        def scalars(self, values, step, axis):
            raise OSError("disk full")

    monkeypatch.setattr(_Recorder, "calls", [])
    monkeypatch.setitem(tracking_backends.BACKENDS, "tensorboard", _Recorder)
    monkeypatch.setitem(tracking_backends.BACKENDS, "trackio", Broken)
    monkeypatch.setitem(tracking_backends.BACKENDS, "wandb", FailsLater)
    cfg = load_config(None, ["tracking.backends=[trackio,wandb,tensorboard]", f"run_dir={tmp_path}"]).tracking
    with caplog.at_level(logging.WARNING):
        log = MetricsLogger(str(tmp_path), cfg)
        assert log.backends == ["wandb", "tensorboard"]
        log.log(0, "rollout", {"mean_reward": 1.0})
        log.log(1, "rollout", {"mean_reward": 0.0})
        log.close()
    assert log.backends == []
    assert [c for c in _Recorder.calls if c[0] == "iteration"] == [
        ("iteration", 0, {"rollout/mean_reward": 1.0}),
        ("iteration", 1, {"rollout/mean_reward": 0.0}),
    ]
    text = caplog.text
    assert "tracking backend trackio is off" in text and "database is locked" in text
    assert "tracking backend wandb failed" in text and "disk full" in text
    assert [row["mean_reward"] for row in read_metrics(str(tmp_path))] == [1.0, 0.0]


def test_a_missing_tracker_package_names_the_install(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    cfg = load_config(None, ["tracking.backends=[wandb]", f"run_dir={tmp_path}"]).tracking
    with caplog.at_level(logging.WARNING):
        assert MetricsLogger(str(tmp_path), cfg).backends == []
    assert "tracking backend wandb is off" in caplog.text and "pip install -e .[tracking]" in caplog.text


@pytest.mark.parametrize(
    "override, key",
    [
        ("tracking.backends=[tensorboard,neptune]", "tracking.backends"),
        ("tracking.mode=cloud", "tracking.mode"),
        ("tracking.log_completions=-1", "tracking.log_completions"),
    ],
)
def test_bad_tracking_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_no_backends_means_json_lines_only(tmp_path):
    cfg = load_config(None, ["tracking.backends=[]", f"run_dir={tmp_path}"]).tracking
    log = MetricsLogger(str(tmp_path), cfg)
    log.log(0, "train", _train([1.0]))
    log.table("samples/executor", sample_rows([_trajectory(0)], 0, 4), 0)
    log.close()
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_sample_rows_spread_over_the_list_drop_the_system_prompt_and_keep_head_and_tail():
    trajectories = [_trajectory(i, text="x" * 50 + "END") for i in range(8)]
    rows = sample_rows(trajectories, 3, 4, max_chars=40)
    assert [row["task_id"] for row in rows] == ["t0", "t2", "t4", "t6"]
    assert rows[0]["iteration"] == 3 and rows[0]["reason"] == "answered" and rows[0]["env"] == "calculation"
    text = rows[0]["text"]
    assert text.startswith("[user] q0") and text.endswith("END") and "[...]" in text and "SYSTEM" not in text
    assert sample_rows(trajectories, 0, 0) == [] and len(sample_rows(trajectories[:2], 0, 4)) == 2


def test_learner_summary_keeps_each_optimizer_step():
    from selfchallenge.learner.actor import summarize

    def rank(losses):
        steps = [dict(loss=x, tokens=5.0, sequences=1.0, grad_norm=0.1, lr=1e-5, step_s=0.5) for x in losses]
        return {"steps": steps, "scoring": {}}

    metrics = summarize([rank([1.0, 0.5]), rank([3.0, 1.5])], {"trajectories": 4.0})
    assert [step["loss"] for step in metrics["per_step"]] == [4.0, 2.0]  # summed over ranks, as `loss` is
    assert metrics["optimizer_steps"] == 2.0 and metrics["first_loss"] == 4.0 and metrics["last_loss"] == 2.0
