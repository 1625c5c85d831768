"""The live parts of a run: Ray, the sandbox pool actor, the rollout engines, the learner group, the tokenizer.

Everything is created lazily, on first use, and torn down by `close()` (the `Runtime` is a context manager), so
a stage that needs no engine (e.g. checking tasks) never starts one. Engines start from the newest exported
model of the run (`RunDir.latest_model`), so a resumed run continues from its last finished training stage.
"""

from __future__ import annotations

import logging
import os
import time

from .config import RunConfig

logger = logging.getLogger(__name__)


def prompt_corpus() -> list[str]:
    """The project's own prompt text (every environment's challenger and executor prompts, the example tasks), so
    the tiny model's tokenizer encodes what it will actually read in a few tokens instead of byte by byte."""
    from .agents.prompts import challenger_system_prompt, example_task, executor_opening
    from .envs import ENV_NAMES, make_env, plugin_folder
    from .envs.calculation import DOMAINS
    from .tasks.parser import format_task

    builtin = [name for name in ENV_NAMES if plugin_folder(name) is None]  # plug-ins keep the tiny model as it is
    texts = [format_task(example_task(make_env(name))) for name in builtin]
    for name in builtin:
        for env_config in [{}] + ([{"domain": d} for d in DOMAINS] if name == "calculation" else []):
            env = make_env(name, env_config)
            texts.append(challenger_system_prompt(name, env, 4))
            texts.append(challenger_system_prompt(name, env, 4, inputs=True))
            texts.append(executor_opening(name, env, "", "code")[0]["content"])
    return texts


def tiny_model_path(model_cfg, seed: int, models_dir: str) -> str:
    """The tiny local model for `model_cfg`'s sizes, its tokenizer trained on the project's own prompts; built once
    under `models_dir` (the folder name encodes everything it depends on)."""
    m = model_cfg
    name = f"tiny-h{m.tiny_hidden_size}-l{m.tiny_layers}-a{m.tiny_heads}-v{m.tiny_vocab_size}-s{seed}-prompts"
    path = os.path.join(os.path.abspath(models_dir), name)
    if not os.path.exists(os.path.join(path, "config.json")):
        from .rollout.tiny_model import build_tiny_model, default_corpus

        logger.info("building the tiny local model at %s", path)
        tmp = f"{path}.tmp-{os.getpid()}"
        build_tiny_model(
            tmp,
            hidden_size=m.tiny_hidden_size,
            layers=m.tiny_layers,
            heads=m.tiny_heads,
            vocab_size=m.tiny_vocab_size,
            seed=seed,
            corpus=default_corpus() + prompt_corpus(),
        )
        os.replace(tmp, path)
    return path


def resolve_model_path(cfg: RunConfig) -> str:
    """The base model folder: `model.path`, or the tiny local model (built once, next to the run dir)."""
    if cfg.model.path != "tiny":
        return cfg.model.path
    return tiny_model_path(cfg.model, cfg.seed, os.path.join(os.path.dirname(os.path.abspath(cfg.run_dir)), "models"))


def data_dirs(cfg: RunConfig, extra: list[dict] | None = None) -> list[str]:
    """Every data dir the sandbox must mount read-only: env data dirs, eval data, sandbox.data_dirs."""
    dirs = list(cfg.sandbox.data_dirs)
    for env_config in [spec.env_config for spec in cfg.envs] + list(extra or []):
        if env_config.get("data_dir"):
            dirs.append(env_config["data_dir"])
    for path in (cfg.eval.m3tooleval_tasks, *cfg.eval.taubench_tasks.values()):
        if path:
            dirs.append(path if os.path.isdir(path) else os.path.dirname(path))
    return sorted({os.path.abspath(d) for d in dirs})


def init_ray(cfg: RunConfig) -> None:
    """Start (or join) Ray. Actor output is forwarded to the terminal only when the run is not quiet (--verbose,
    or no log folder set up): a quiet run's actors write to `<run_dir>/logs/` (logs.py)."""
    import ray

    from . import logs

    if ray.is_initialized():
        return
    logs.tame()  # ray configured its logger on import; ray.init logs through it
    to_driver = logs.log_dir() is None
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")  # set when running under `ray job submit`
    if address:
        ray.init(address=address, log_to_driver=to_driver)
    else:
        ray.init(num_cpus=cfg.ray.num_cpus or None, include_dashboard=False, log_to_driver=to_driver)
    logs.tame()


def planned_optimizer_steps(cfg: RunConfig) -> int:
    """Optimizer steps the LR schedule spans: per iteration, epochs x ceil(trajectories / mini_batch_size), with
    trajectories bounded by the task budget (not every proposed task is kept, so this is an upper bound)."""
    per_epoch = 1
    if cfg.learner.mini_batch_size:
        trajectories = cfg.challenger.tasks_per_iteration * (
            cfg.executor.samples_per_task + cfg.executor.resample_unsolved
        )
        per_epoch = max(1, -(-trajectories // cfg.learner.mini_batch_size))
    return max(1, cfg.iterations * cfg.learner.epochs * per_epoch)


class Runtime:
    def __init__(self, cfg: RunConfig, latest_model: str | None = None, latest_checkpoint: str | None = None):
        self.cfg = cfg
        self.base_model = resolve_model_path(cfg)
        if cfg.mode == "distill":  # before anything starts: the student trains on the teacher's token ids
            from .learner.distill import require_same_tokenizer

            require_same_tokenizer(cfg.model.teacher_path, self.base_model)
        self.model_path = latest_model or self.base_model
        self.latest_checkpoint = latest_checkpoint
        self._sandbox = None
        self._sandbox_client = None
        self._engines: list | None = None
        self._teacher_engines: list | None = None
        self._user_engines: list | None = None
        self._learner = None
        self._chat = None
        self.weight_version = 0
        init_ray(cfg)

    # -- tokens -----------------------------------------------------------------------------------------
    @property
    def chat(self):
        if self._chat is None:
            from transformers import AutoTokenizer

            from .rollout.chat import ChatTokens

            self._chat = ChatTokens(AutoTokenizer.from_pretrained(self.base_model))
        return self._chat

    # -- sandbox ----------------------------------------------------------------------------------------
    @property
    def sandbox_actors(self) -> list:
        """The sandbox pools: one per node that offers `sandbox.node_resource` (all of a cluster's sandbox nodes
        are used), or a single one anywhere when it is unset."""
        if self._sandbox is None:
            import ray

            from .sandbox.actor import create_sandbox_actor, sandbox_placements

            actors = [
                create_sandbox_actor(self.cfg.sandbox, data_dirs=data_dirs(self.cfg), **placement)
                for placement in sandbox_placements(self.cfg.sandbox.node_resource)
            ]
            infos = ray.get([actor.info.remote() for actor in actors])
            logger.info("%d sandbox pool(s) ready: %s", len(actors), infos)
            self._sandbox = actors
        return self._sandbox

    @property
    def sandbox(self):
        """The async client over the pools (one for the run: it knows which pool holds each session)."""
        if self._sandbox_client is None:
            from .rollout.sandbox_client import RaySandbox

            self._sandbox_client = RaySandbox(self.sandbox_actors)
        return self._sandbox_client

    # -- engines ----------------------------------------------------------------------------------------
    def _start_engines(self, model_path: str, weight_version: int = 0, engine_cfg=None) -> list:
        from . import logs
        from .rollout.engine import create_engines

        begin = time.monotonic()
        try:
            engines = create_engines(
                engine_cfg or self.cfg.engine,
                model_path,
                dtype=self.cfg.model.dtype,
                logprobs_mode=self.cfg.engine.logprobs_mode,
                weight_version=weight_version,
            )
        finally:
            logs.tame()  # the driver imported vLLM, which configures its own logger
        logger.info("%d engine(s) for %s ready in %.0f s", len(engines), model_path, time.monotonic() - begin)
        return engines

    @property
    def engines(self) -> list:
        """The policy's engines (the student in distill mode)."""
        if self._engines is None:
            # a resumed run starts them on its latest model, whose version the pipeline set in weight_version
            self._engines = self._start_engines(self.model_path, self.weight_version)
        return self._engines

    @property
    def generation_engines(self) -> list:
        """Engines that write tasks and solve them: the teacher in distill mode, else the policy."""
        if self.cfg.mode != "distill":
            return self.engines
        if self._teacher_engines is None:
            self._teacher_engines = self._start_engines(self.cfg.model.teacher_path)
        return self._teacher_engines

    def user_policy(self):
        """A frozen engine on the base model for the simulated user (started on first use, never synced)."""
        from .rollout.policy import EnginePolicy

        if self._user_engines is None:
            from dataclasses import replace

            self._user_engines = self._start_engines(
                self.base_model, engine_cfg=replace(self.cfg.engine, num_engines=1)
            )
        return EnginePolicy(self._user_engines)

    def policy(self, generation: bool = False):
        from .rollout.policy import EnginePolicy

        return EnginePolicy(self.generation_engines if generation else self.engines)

    # -- learner ----------------------------------------------------------------------------------------
    @property
    def learner(self):
        if self._learner is None:
            from . import logs
            from .learner.actor import LearnerGroup

            self._learner = LearnerGroup(
                self.cfg.learner,
                self.base_model,
                dtype=self.cfg.model.dtype,
                total_steps=planned_optimizer_steps(self.cfg),
                temperature=self.cfg.executor.sampling.temperature,
            )
            logs.tame()
            if self.latest_checkpoint:
                self._learner.load_checkpoint(self.latest_checkpoint)
        return self._learner

    def sync_weights(self, version: int) -> dict:
        """Push the learner's weights to the policy engines (only those already running). Either way the weights
        at model_path are `version` from now on: engines started later are labelled with it."""
        if self._engines is None:
            self.weight_version = version
            return {"skipped": "no engine running"}
        engine_cfg = self.cfg.engine
        timings = self.learner.sync_weights(
            self._engines,
            version,
            timeout_s=engine_cfg.weight_sync_timeout_s,
            strategy=engine_cfg.weight_sync,
            tensor_parallel_size=engine_cfg.tensor_parallel_size,
        )
        self.weight_version = version
        return timings

    def close(self) -> None:
        import ray

        engines = (self._engines or []) + (self._teacher_engines or []) + (self._user_engines or [])
        if engines:
            from .rollout.engine import shutdown_engines

            shutdown_engines(engines)
        if self._learner is not None:
            self._learner.shutdown()
        if self._sandbox is not None:
            try:
                ray.get([actor.close.remote() for actor in self._sandbox], timeout=60)
            except Exception:  # noqa: BLE001 - best effort at shutdown; containers are labelled for cleanup
                logger.warning("a sandbox pool did not close cleanly")
        self._engines = self._teacher_engines = self._user_engines = self._learner = self._sandbox = None
        self._sandbox_client = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
