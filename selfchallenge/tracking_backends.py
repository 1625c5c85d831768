"""Experiment-tracker adapters for MetricsLogger (tracking.backends): TensorBoard, trackio, W&B, MLflow.

Each adapter imports its package only when it is configured and offers `scalars(values, step, axis)` (`axis`
names the x axis: "iteration" or "optimizer_step"), `table(name, rows, step)` and `close()`. They see only
numbers and small tables; `<run_dir>/metrics.jsonl` stays the record.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import warnings

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e .[tracking]"


class TensorBoardBackend:
    name = "tensorboard"
    install = "pip install tensorboard"

    def __init__(self, run_dir: str, cfg, config_dict: dict | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))

    def scalars(self, values: dict, step: int, axis: str) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def table(self, name: str, rows: list[dict], step: int) -> None:
        # The text plugin renders markdown: one heading line per row, its text as an indented code block.
        parts = []
        for row in rows:
            head = ", ".join(f"{key}: {value}" for key, value in row.items() if key != "text")
            parts.append(f"**{head}**\n\n" + "\n".join("    " + line for line in str(row.get("text", "")).splitlines()))
        self.writer.add_text(name, "\n\n".join(parts), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TrackioBackend:
    """Local SQLite database `$TRACKIO_DIR/<project>.db` (default ~/.cache/huggingface/trackio); a rerun of the
    same run dir resumes the trackio run of the same name."""

    name = "trackio"
    install = INSTALL_HINT

    def __init__(self, run_dir: str, cfg, config_dict: dict | None):
        import trackio

        self.trackio = trackio
        with _quiet():  # trackio prints its banner and dashboard instructions to stdout
            self.run = trackio.init(
                project=cfg.project,
                name=run_name(cfg, run_dir),
                config=config_dict,
                resume="allow",
                embed=False,
                auto_log_cpu=False,
                auto_log_gpu=False,
            )

    def scalars(self, values: dict, step: int, axis: str) -> None:
        self.run.log(values, step=step)

    def table(self, name: str, rows: list[dict], step: int) -> None:
        self.run.log({name: self.trackio.Table(data=rows)}, step=step)

    def close(self) -> None:
        with _quiet():
            if self.trackio.context_vars.current_run.get() is self.run:
                self.trackio.finish()  # also clears trackio's current run, so its atexit hook has nothing to do
            else:
                self.run.finish()


class WandbBackend:
    """`<run_dir>/wandb/<offline-run-...>/run-<id>.wandb` in offline mode (`wandb sync` uploads it later). Each
    invocation is a new W&B run; the x axes are the `iteration` and `optimizer_step` metrics, not W&B's own step,
    so the curves of a resumed run line up with the first part's."""

    name = "wandb"
    install = INSTALL_HINT

    def __init__(self, run_dir: str, cfg, config_dict: dict | None):
        import wandb

        self.wandb = wandb
        # console="off": no capture of the driver's terminal; silent: no banner or sync hints.
        settings = wandb.Settings(silent=True, console="off", save_code=False)
        self.run = wandb.init(
            project=cfg.project,
            name=run_name(cfg, run_dir),
            dir=run_dir,
            mode=cfg.mode,
            config=config_dict,
            settings=settings,
        )
        self._axes: dict[str, str] = {}

    def _define(self, keys, axis: str) -> None:
        for prefix in {key.split("/", 1)[0] for key in keys} - set(self._axes):
            self.run.define_metric(f"{prefix}/*", step_metric=axis)
            self._axes[prefix] = axis

    def scalars(self, values: dict, step: int, axis: str) -> None:
        self._define(values, axis)
        self.run.log({**values, axis: step})

    def table(self, name: str, rows: list[dict], step: int) -> None:
        self._define([name], "iteration")
        columns = list(rows[0])
        table = self.wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        self.run.log({name: table, "iteration": step})

    def close(self) -> None:
        self.run.finish()


class MlflowBackend:
    """`file:<run_dir>/mlruns` unless tracking.mlflow_uri is set; a rerun of the same run dir continues the
    MLflow run it started (found by its `selfchallenge.run_dir` tag). Tables are JSON artifacts
    (`<name>/iter_<i>.json`, one row per sample)."""

    name = "mlflow"
    install = INSTALL_HINT
    _TAG = "selfchallenge.run_dir"

    def __init__(self, run_dir: str, cfg, config_dict: dict | None):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.uri = cfg.mlflow_uri or "file:" + os.path.join(os.path.abspath(run_dir), "mlruns")
        if self.uri.startswith("file:"):
            # MLflow 3.x refuses the file store unless asked; it needs no server and no database package
            # (mlflow-skinny has no SQLAlchemy), which is what a run directory wants.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(cfg.project)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(cfg.project)
        where = os.path.abspath(run_dir)
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{self._TAG}` = '{where}'")
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(experiment_id, run_name=run_name(cfg, run_dir), tags={self._TAG: where})
        self.run_id = run.info.run_id
        params = [Param(_mlflow_key(k), str(v)[:6000]) for k, v in flatten(config_dict or {}, sep=".").items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def scalars(self, values: dict, step: int, axis: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_mlflow_key(k), float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def table(self, name: str, rows: list[dict], step: int) -> None:
        columns = list(rows[0])
        data = {column: [row.get(column) for row in rows] for column in columns}
        with warnings.catch_warnings():  # pandas 3 warns about MLflow's own select_dtypes call
            warnings.filterwarnings("ignore", message=".*select_dtypes.*")
            self.client.log_table(self.run_id, data=data, artifact_file=f"{name}/iter_{step:03d}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


BACKENDS = {cls.name: cls for cls in (TensorBoardBackend, TrackioBackend, WandbBackend, MlflowBackend)}


def open_backends(cfg, run_dir: str, config_dict: dict | None) -> list:
    """The configured adapters that started; one that cannot start is left out with a warning (the run goes on)."""
    opened = []
    for name in cfg.backends:
        cls = BACKENDS[name]
        try:
            opened.append(cls(run_dir, cfg, config_dict))
        except ImportError as exc:
            logger.warning("tracking backend %s is off: %s; install it (%s) or drop it from tracking.backends",
                           name, exc, cls.install)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a tracker must never stop a run; metrics.jsonl is the record
            logger.warning(
                "tracking backend %s is off: it failed to start (%s: %s); fix that or drop %s from "
                "tracking.backends (metrics.jsonl still has every record)",
                name, type(exc).__name__, exc, name,
            )  # fmt: skip
    return opened


def run_name(cfg, run_dir: str) -> str:
    return cfg.run_name or os.path.basename(os.path.abspath(run_dir))


def _mlflow_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space : and /; "pass@1" becomes "pass_1".
    return re.sub(r"[^\w\-. :/]", "_", key)


def flatten(values: dict, prefix: str = "", sep: str = "/") -> dict:
    """{"a": {"b": 1}} -> {"a/b": 1}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}{sep}", sep))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextlib.contextmanager
def _quiet():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        logger.debug("%s", buffer.getvalue().strip())
