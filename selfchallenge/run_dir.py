"""The run directory: the resolved config, which stages are finished (state.json), the per-iteration folders and
the models each finished training stage left."""

from __future__ import annotations

import json
import os
import threading

from . import config as config_mod
from .config import ConfigError, RunConfig

# Keys whose change makes an existing run dir meaningless to resume (everything else may change between runs).
_RESUME_KEYS = ("mode", "seed", "envs", "model", "challenger", "executor", "learner.algorithm")


class RunDir:
    """The run directory: resolved config, finished stages (state.json), per-iteration folders."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.path = os.path.abspath(cfg.run_dir)
        os.makedirs(self.path, exist_ok=True)
        self.state_path = os.path.join(self.path, "state.json")
        self.state = {"done": [], "models": {}}
        self._lock = threading.Lock()  # pipeline.async_rollouts: the training thread marks stages too
        if os.path.exists(self.state_path):
            with open(self.state_path, encoding="utf-8") as handle:
                self.state = json.load(handle)
            self._check_resumable()
        with open(os.path.join(self.path, "config.yaml"), "w", encoding="utf-8") as handle:
            handle.write(config_mod.to_yaml(cfg))

    def _check_resumable(self) -> None:
        saved = self.state.get("config", {})
        now = config_mod.to_dict(self.cfg)
        for key in _RESUME_KEYS:
            head, _, tail = key.partition(".")
            old, new = saved.get(head), now.get(head)
            if tail and isinstance(old, dict):
                old, new = old.get(tail), new.get(tail)
            if saved and old != new:
                raise ConfigError(
                    f"{self.path} holds a run made with a different `{key}`; resuming would mix the two. "
                    f"Use a new run_dir (run_dir=...) or restore {key}"
                )

    def iter_dir(self, iteration: int) -> str:
        path = os.path.join(self.path, f"iter_{iteration:03d}")
        os.makedirs(path, exist_ok=True)
        return path

    def done(self, key: str) -> bool:
        return key in self.state["done"]

    def mark(self, key: str, **extra) -> None:
        with self._lock:
            self.state["done"].append(key)
            self.state.update(extra)
            self.state["config"] = config_mod.to_dict(self.cfg)
            tmp = f"{self.state_path}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self.state, handle, indent=1)
            os.replace(tmp, self.state_path)

    @property
    def latest_model(self) -> tuple[str | None, str | None]:
        """(HF folder, DeepSpeed checkpoint) of the newest finished training stage, or (None, None)."""
        models = self.state.get("models", {})
        if not models:
            return None, None
        newest = models[max(models, key=int)]
        return newest["hf"], newest["checkpoint"]
