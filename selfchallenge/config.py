"""Typed experiment configuration.

Every section is a dataclass; `load_config` merges, in order: the dataclass defaults, a YAML file (optional) and
`key=value` overrides from the command line (OmegaConf dotlist syntax, e.g. `learner.lr=1e-5
envs=[{name:retail}]`). Unknown keys, wrong types and out-of-range choices raise `ConfigError`, whose message
names the key and says how to fix it. The resolved config is saved as `config.yaml` in the run directory.
The reference for every key is docs/config.md; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .envs import ENV_NAMES  # the one list of environments (envs/ is stdlib only)

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ray_jobs", "configs")


class ConfigError(ValueError):
    """A configuration problem the user must fix; the message names the key."""


@dataclass
class EnvSpec:
    name: str = "calculation"
    # Environment-specific world options: `domain`, `seed`, `data_dir`, sizes... (see docs/environments.md).
    env_config: dict[str, Any] = field(default_factory=dict)
    # Relative weight of this environment when the challenger's task budget is split between environments.
    weight: float = 1.0


@dataclass
class ModelConfig:
    # A Hugging Face model folder or hub id; "tiny" builds (once) the tiny local model into <run_dir>/../models.
    path: str = "tiny"
    # Used only when path == "tiny": size of the randomly initialised model.
    tiny_hidden_size: int = 128
    tiny_layers: int = 2
    tiny_heads: int = 2
    tiny_vocab_size: int = 1024  # upper bound: a small training corpus yields fewer tokens
    # Optional separate teacher for mode=distill (same format as `path`).
    teacher_path: str = ""
    dtype: str = "auto"  # auto = bfloat16 on GPU, float32 on CPU


@dataclass
class EngineConfig:
    num_engines: int = 1
    tensor_parallel_size: int = 1
    max_model_len: int = 4096
    # GPU: fraction of GPU memory for weights + KV cache. CPU: ignored in favour of cpu_kvcache_space_gb.
    gpu_memory_utilization: float = 0.85
    cpu_kvcache_space_gb: float = 1.0  # GiB of RAM per engine (fractions allowed); VLLM_CPU_KVCACHE_SPACE is ignored
    cpu_threads: int = 0  # 0 = let vLLM choose (OMP threads) from the actor's CPUs
    num_cpus_per_engine: float = 1.0
    enforce_eager: bool = True
    # CPU only: "uni" runs the model in vLLM's engine-core process; "mp" (vLLM's CPU default) adds a worker process,
    # which costs another vLLM import at start (~20 s here) and pins the model to one core of two. Tensor
    # parallelism always uses "mp".
    cpu_executor: str = "uni"
    max_num_seqs: int = 64
    # Ray custom resource each engine takes one unit of (one per GPU with tensor parallelism), steering engines to
    # the nodes that offer it; "" = wherever CPUs/GPUs allow.
    node_resource: str = ""
    seed: int = 0
    # Each sampling request gets its own seed from engine.seed, its episode's id and its index in the episode, so a
    # run of the same seed samples the same tokens whatever the engine batches together. On CPU this turns chunked
    # prefill off (vLLM-CPU crashes on a seeded prompt prefilled in chunks): each step prefills whole prompts.
    seed_requests: bool = False
    start_timeout_s: float = 300.0
    request_timeout_s: float = 600.0
    weight_sync_timeout_s: float = 300.0
    # How the learner pushes weights (learner/weight_sync.py): "blobs" = packed safetensors buckets through Ray's
    # object store; "collective" = broadcast from the learner's rank 0 to every engine worker (gloo on CPU, NCCL on
    # GPUs), no serialisation; "shm" = one /dev/shm file the engines map (engines on the learner's node only). All
    # reload in place.
    weight_sync: str = "blobs"
    # Logprobs returned with samples: processed = under the sampling distribution (after temperature/top-p).
    logprobs_mode: str = "processed_logprobs"


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256  # per model turn


@dataclass
class SandboxConfig:
    backend: str = "auto"  # auto | docker | bwrap  (auto: docker when a daemon answers, else bwrap)
    image: str = "selfchallenge-sandbox:1"
    num_workers: int = 2  # warm containers / bwrap workers for one-shot jobs (task checks, program runs)
    max_sessions: int = 32  # extra workers that host executor/challenger sessions (one session per worker)
    memory_mb: int = 512  # per worker (docker --memory); also the address-space limit of each program
    cpus: float = 1.0  # per container
    pids_limit: int = 64
    tmpfs_mb: int = 64  # scratch space inside the sandbox
    program_timeout_s: float = 5.0  # one program (verifier, solution, failure case, code action)
    host_grace_s: float = 5.0  # the host kills and replaces a worker this long after a job's own deadline
    start_timeout_s: float = 120.0  # a worker (container or bwrap) must answer its first ping within this
    max_output_chars: int = 2000  # stdout kept per program/code action (tool outputs are capped the same)
    max_result_bytes: int = 8_000_000  # largest result line a worker may send (state snapshots included)
    data_dirs: list[str] = field(default_factory=list)  # extra read-only mounts (env data dirs are added automatically)
    # Ray custom resource that marks nodes with Docker (cluster.yaml: `sandbox`); "" = schedule anywhere.
    node_resource: str = ""


@dataclass
class ChallengerConfig:
    tasks_per_iteration: int = 16
    explore_turns: int = 4
    min_failure_cases: int = 1
    max_tokens: int = 768  # for the final Code-as-Task turn
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    dedup_threshold: float = 0.9  # instruction/verifier similarity above which a task counts as a duplicate
    max_per_instruction: int = 0  # keep at most this many tasks with the same instruction per iteration (0 = all)
    # Which filter stage decides what reaches the executor (the paper's Code-as-Task ablation, tasks/filter_modes.py):
    # instruction (every parsed task) | verifier_runs | solution_passes | full (failure cases fail too: the paper).
    filter: str = "full"
    # Train the challenger role too: its episodes join the learner's batch with reward 1 when the task it wrote
    # reached the executor ("kept"), or in addition was solved by some but not all executor samples
    # ("learnable"), or reached it asking a question no other task of the iteration asks ("unique").
    # "none": only the executor learns (the paper's setting).
    reward: str = "none"
    # The calculation environment's optional `<inputs>` tag (the task's numbers as named variables in every program
    # and in state["inputs"]): off by default, as the benchmark's tasks carry their numbers in the text; the demo
    # turns it on (a tiny model cannot copy numbers from text into code).
    inputs: bool = False
    # Tasks from a file (JSONL or dataset folder) checked and used alongside the first iteration's proposals:
    # hand-written tasks, or tasks kept by an earlier run.
    seed_tasks: str = ""


@dataclass
class ExecutorConfig:
    samples_per_task: int = 4  # k rollouts per kept task
    # A kept task none of whose k rollouts succeeded gets this many more (one more round; 0 = off): 0/1-reward RL
    # learns nothing from a task it never solves, and a skill solved ~1% of the time needs more than k tries.
    resample_unsolved: int = 0
    max_turns: int = 10
    max_episode_tokens: int = 3072
    action_format: str = "code"  # code | json
    concurrency: int = 16  # episodes in flight at once (continuous batching across episodes)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    user_model: str = "policy"  # policy | frozen: which engine plays the simulated user in retail/airline
    # A code action that sets the global `answer` ends a calculation/web episode with that answer (self-play only;
    # benchmark evaluation always ends on `Answer:`, as M3ToolEval does). The demo turns it on.
    answer_in_code: bool = False


@dataclass
class LearnerConfig:
    # rft | sft (the same algorithm) | reinforce | rloo | grpo | drgrpo | ppo_group | ppo | dpo (docs/algorithms.md)
    algorithm: str = "rft"
    num_learners: int = 1
    node_resource: str = ""  # Ray custom resource each learner rank takes one unit of; "" = anywhere
    # CPU only: torch (OpenMP) threads per learner rank; 0 = the one CPU Ray reserves for it. More threads than
    # reserved CPUs is safe while engines idle during training (the sequential loop), not with async_rollouts.
    cpu_threads: int = 0
    zero_stage: int = 0  # 0 | 2 | 3
    lr: float = 1e-5
    lr_schedule: str = "constant"  # constant | cosine | linear
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    epochs: int = 1  # passes over each iteration's trajectories
    mini_batch_size: int = 0  # trajectories per optimizer step; 0 = the whole iteration is one step
    micro_batch_tokens: int = 4096  # token budget of one micro-batch (sequences are packed greedily)
    gradient_checkpointing: bool = False
    # Token positions per slice of the LM head when computing logprobs (recomputed in backward): the full
    # [tokens, vocab] float32 logits never exist at once; 0 = the model's own full logits.
    logprob_chunk_tokens: int = 4096
    # Algorithm knobs (used only by the algorithms that name them in their docstring).
    failure_weight: float = 0.0  # rft/sft: weight of reward-0 trajectories (distillation on failures)
    # rft/sft: successful episodes of this trajectories folder (e.g. a warm start's warmstart_data/
    # executor_trajectories) mixed into every iteration's training set, as this share of it (learner/replay.py)
    replay_from: str = ""
    replay_fraction: float = 0.0  # 0 = no replay; < 1
    clip_eps: float = 0.2  # ppo/ppo_group/grpo/drgrpo ratio clip
    kl_coef: float = 0.0  # > 0 loads a frozen reference model
    normalize_advantages_by_role: bool = True
    # Off-policy correction (policy-gradient algorithms): a no-grad trainer pass gives pi_old, and each token's loss
    # is multiplied by min(pi_old / pi_sampler, tis_cap) (algorithms/tis.py). false: pi_old = the sampler's logprobs.
    tis: bool = True
    tis_cap: float = 2.0
    # Actor-critic ppo: GAE over the sampled tokens, clipped value loss, the critic's own AdamW.
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_clip: float = 0.2
    critic_lr: float = 0.0  # 0 = learner.lr
    dpo_beta: float = 0.1  # dpo: strength of the tie to the reference policy
    # drgrpo's constant normaliser L (a generation budget); 0 = executor.max_episode_tokens (set by load_config)
    max_response_tokens: int = 0
    seed: int = 0


@dataclass
class EvalConfig:
    every: int = 1  # evaluate after every N iterations (0 = only before and after)
    num_samples: int = 1  # n episodes per benchmark task (Pass@1 averaged over n, Pass@k with k = n)
    # Benchmark task sources per environment; empty = the project's held-out generated tasks.
    m3tooleval_tasks: str = ""  # path to an M3ToolEval tasks.json (calculation and web_browsing)
    m3_domains: list[str] = field(default_factory=list)  # only these M3ToolEval domains; [] = all
    taubench_tasks: dict[str, str] = field(default_factory=dict)  # env name -> tasks_*.json
    heldout_tasks: str = ""  # a JSONL of Code-as-Task records kept apart from training
    max_tasks: int = 0  # 0 = all
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.0))


@dataclass
class RayConfig:
    address: str = ""  # "" = start a local Ray; "auto" or "ray://host:port" to join a cluster
    num_cpus: int = 0  # local mode only; 0 = all


@dataclass
class CheckpointConfig:
    keep_last: int = 0  # keep the checkpoints (DeepSpeed state + HF export) of the newest N iterations; 0 = all


@dataclass
class PipelineConfig:
    # true: while the learner trains on iteration i, the engines already generate iteration i+1 (propose, check,
    # solve) with iteration i's weights; the new weights reach them once both are done. Rollouts are then at most
    # one weight version behind the learner, and learner.tis corrects them (pipeline.py, docs/config.md).
    async_rollouts: bool = False


TRACKING_BACKENDS = ("tensorboard", "trackio", "wandb", "mlflow")


@dataclass
class TrackingConfig:
    # Experiment trackers fed alongside <run_dir>/metrics.jsonl (the record): any of TRACKING_BACKENDS; [] = none.
    backends: list[str] = field(default_factory=lambda: ["tensorboard"])
    project: str = "selfchallenge"
    run_name: str = ""  # "" = the run dir's basename
    mode: str = "offline"  # offline | online: W&B's mode (trackio is local either way)
    mlflow_uri: str = ""  # "" = file:<run_dir>/mlruns
    log_completions: int = 4  # sample transcripts per role per iteration, logged as a table (0 = none)


@dataclass
class RunConfig:
    run_dir: str = "runs/default"
    seed: int = 0  # the tiny model's (model.path=tiny); engines and learner: engine.seed, learner.seed
    mode: str = "self_improve"  # self_improve | distill
    iterations: int = 1
    envs: list[EnvSpec] = field(default_factory=lambda: [EnvSpec()])
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    challenger: ChallengerConfig = field(default_factory=ChallengerConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


_CHOICES = {
    "mode": ("self_improve", "distill"),
    "sandbox.backend": ("auto", "docker", "bwrap"),
    "executor.action_format": ("code", "json"),
    "engine.weight_sync": ("blobs", "collective", "shm"),
    "engine.cpu_executor": ("uni", "mp"),
    "engine.logprobs_mode": ("processed_logprobs", "raw_logprobs"),
    "executor.user_model": ("policy", "frozen"),
    "challenger.reward": ("none", "kept", "learnable", "unique"),
    "challenger.filter": ("instruction", "verifier_runs", "solution_passes", "full"),
    "learner.algorithm": ("rft", "sft", "reinforce", "rloo", "grpo", "drgrpo", "ppo_group", "ppo", "dpo"),
    "learner.zero_stage": (0, 2, 3),
    "learner.lr_schedule": ("constant", "cosine", "linear"),
    "tracking.mode": ("offline", "online"),
}
_POSITIVE = (
    "iterations", "engine.num_engines", "engine.tensor_parallel_size", "engine.max_model_len",
    "engine.max_num_seqs", "engine.cpu_kvcache_space_gb", "engine.num_cpus_per_engine", "engine.start_timeout_s",
    "engine.request_timeout_s", "engine.weight_sync_timeout_s", "sandbox.num_workers", "sandbox.memory_mb",
    "sandbox.program_timeout_s", "challenger.tasks_per_iteration", "executor.samples_per_task", "executor.max_turns",
    "executor.concurrency", "learner.num_learners", "learner.micro_batch_tokens", "learner.epochs",
    "sandbox.max_sessions", "sandbox.pids_limit", "sandbox.tmpfs_mb", "sandbox.cpus", "sandbox.host_grace_s",
    "sandbox.max_output_chars", "sandbox.max_result_bytes", "sandbox.start_timeout_s",
)  # fmt: skip
# vLLM's CPU attention kernels (CPUAttentionBackend.get_supported_head_sizes in vLLM 0.32): the tiny model's and
# the engine's fallback when vLLM cannot be imported in the driver.
CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def _lookup(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: RunConfig) -> RunConfig:
    for key, choices in _CHOICES.items():
        value = _lookup(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {list(choices)}; set {key} to one of them")
    for key in _POSITIVE:
        if _lookup(cfg, key) <= 0:
            raise ConfigError(f"{key}={_lookup(cfg, key)!r} must be > 0")
    if cfg.challenger.max_per_instruction < 0:
        raise ConfigError(
            f"challenger.max_per_instruction={cfg.challenger.max_per_instruction} must be >= 0 (0 keeps every task)"
        )
    if cfg.executor.resample_unsolved < 0:
        raise ConfigError(
            f"executor.resample_unsolved={cfg.executor.resample_unsolved} must be >= 0 (0 resamples no task)"
        )
    if cfg.checkpoint.keep_last < 0:
        raise ConfigError(f"checkpoint.keep_last={cfg.checkpoint.keep_last} must be >= 0 (0 keeps every iteration's)")
    for backend in cfg.tracking.backends:
        if backend not in TRACKING_BACKENDS:
            raise ConfigError(
                f"tracking.backends has {backend!r}, not one of {list(TRACKING_BACKENDS)}; "
                "set e.g. tracking.backends=[tensorboard,wandb] (or [] for metrics.jsonl alone)"
            )
    if cfg.tracking.log_completions < 0:
        raise ConfigError(f"tracking.log_completions={cfg.tracking.log_completions} must be >= 0 (0 logs none)")
    if not cfg.envs:
        raise ConfigError("envs is empty; give at least one environment, e.g. envs=[{name:calculation}]")
    for i, spec in enumerate(cfg.envs):
        if spec.name not in ENV_NAMES:
            raise ConfigError(f"envs[{i}].name={spec.name!r} is not one of {list(ENV_NAMES)}")
        data_dir = spec.env_config.get("data_dir")
        if data_dir:
            if not os.path.isdir(data_dir):
                raise ConfigError(f"envs[{i}].env_config.data_dir={data_dir!r} is not a directory")
            # Sandboxes mount data dirs at their absolute path, so records must name them that way.
            spec.env_config["data_dir"] = os.path.abspath(data_dir)
    for key in ("eval.heldout_tasks", "eval.m3tooleval_tasks", "challenger.seed_tasks"):
        path = _lookup(cfg, key)
        if path and not os.path.exists(path):
            raise ConfigError(f"{key}={path!r} does not exist")
    from .eval.m3tooleval import M3_DOMAINS

    unknown = [domain for domain in cfg.eval.m3_domains if domain not in M3_DOMAINS]
    if unknown:
        raise ConfigError(f"eval.m3_domains has {unknown}; M3ToolEval's domains are {list(M3_DOMAINS)}")
    for env, path in cfg.eval.taubench_tasks.items():
        if env not in ("retail", "airline"):
            raise ConfigError(f"eval.taubench_tasks has key {env!r}; use retail or airline")
        if not os.path.exists(path):
            raise ConfigError(f"eval.taubench_tasks.{env}={path!r} does not exist")
    if cfg.model.path == "tiny":
        heads = cfg.model.tiny_heads
        if heads <= 0 or cfg.model.tiny_hidden_size % heads or cfg.model.tiny_hidden_size // heads not in CPU_HEAD_DIMS:
            raise ConfigError(
                f"model.tiny_hidden_size={cfg.model.tiny_hidden_size} / model.tiny_heads={heads} must give a head "
                f"dimension vLLM supports, one of {list(CPU_HEAD_DIMS)} (e.g. hidden 128 with 2 heads)"
            )
    if cfg.mode == "distill" and cfg.learner.algorithm not in ("rft", "sft"):
        raise ConfigError(
            f"mode=distill learns by supervised fine-tuning on the teacher's trajectories; set learner.algorithm=sft "
            f"(got {cfg.learner.algorithm!r}: its importance ratios would compare the student with the teacher)"
        )
    if cfg.mode == "distill" and not cfg.model.teacher_path:
        raise ConfigError("mode=distill needs model.teacher_path (the teacher that writes tasks and trajectories)")
    if cfg.learner.algorithm in ("grpo", "drgrpo", "rloo", "ppo_group", "dpo") and cfg.executor.samples_per_task < 2:
        raise ConfigError(
            f"learner.algorithm={cfg.learner.algorithm} needs a group: set executor.samples_per_task >= 2"
        )
    if cfg.learner.max_response_tokens == 0:
        cfg.learner.max_response_tokens = cfg.executor.max_episode_tokens
    validate_learner(cfg.learner)
    _check_sampler_logprobs(cfg)
    _check_async_rollouts(cfg)
    return cfg


def _check_async_rollouts(cfg: RunConfig) -> None:
    if not cfg.pipeline.async_rollouts:
        return
    if cfg.mode == "distill":
        raise ConfigError(
            "pipeline.async_rollouts=true is for mode=self_improve (in distill mode the teacher, whose weights never "
            "change, writes and solves the tasks: there is nothing to overlap with); set pipeline.async_rollouts=false"
        )
    if cfg.learner.algorithm in _POLICY_GRADIENT_ALGORITHMS and not cfg.learner.tis:
        raise ConfigError(
            f"pipeline.async_rollouts=true trains learner.algorithm={cfg.learner.algorithm} on rollouts one weight "
            "version behind the learner; their correction is the truncated importance weight: set learner.tis=true "
            "(or pipeline.async_rollouts=false)"
        )


# Algorithms whose loss compares with the sampler's logprobs: the ratio ones (pi_old = the sampler's when
# learner.tis=false), and every policy-gradient one when learner.tis=true (the importance weight).
_RATIO_ALGORITHMS = ("grpo", "drgrpo", "ppo_group", "ppo")
_POLICY_GRADIENT_ALGORITHMS = ("reinforce", "rloo", *_RATIO_ALGORITHMS)


def validate_learner(learner: LearnerConfig) -> LearnerConfig:
    """The learner section's own rules (also applied when a LearnerConfig is built in code, not loaded)."""
    algorithm = learner.algorithm
    if algorithm in ("reinforce", "rloo") and (learner.epochs > 1 or learner.mini_batch_size > 0):
        raise ConfigError(
            f"learner.algorithm={algorithm} takes one on-policy gradient step per batch (it has no importance ratio); "
            f"set learner.epochs=1 and learner.mini_batch_size=0 (got {learner.epochs} and "
            f"{learner.mini_batch_size}), or use ppo_group/grpo for several steps per batch"
        )
    if algorithm == "dpo" and learner.kl_coef > 0:
        raise ConfigError(
            "learner.algorithm=dpo already ties the policy to the reference through learner.dpo_beta; "
            "set learner.kl_coef=0"
        )
    if learner.replay_fraction > 0 and (algorithm not in ("rft", "sft") or not learner.replay_from):
        raise ConfigError(
            f"learner.replay_fraction={learner.replay_fraction} replays earlier successes into RFT: it needs "
            f"learner.algorithm=rft or sft (got {algorithm}) and learner.replay_from=<trajectories folder, e.g. a "
            "warm start's <model>/warmstart_data/executor_trajectories>; or set learner.replay_fraction=0"
        )
    checks = (
        ("learner.replay_fraction", learner.replay_fraction, 0.0 <= learner.replay_fraction < 1.0, "in [0, 1)"),
        ("learner.tis_cap", learner.tis_cap, learner.tis_cap >= 1.0, ">= 1 (the weights are truncated at it)"),
        ("learner.gamma", learner.gamma, 0.0 <= learner.gamma <= 1.0, "in [0, 1]"),
        ("learner.gae_lambda", learner.gae_lambda, 0.0 <= learner.gae_lambda <= 1.0, "in [0, 1]"),
        ("learner.value_clip", learner.value_clip, learner.value_clip > 0, "> 0"),
        ("learner.critic_lr", learner.critic_lr, learner.critic_lr >= 0, ">= 0 (0 = learner.lr)"),
        ("learner.dpo_beta", learner.dpo_beta, learner.dpo_beta > 0, "> 0"),
        ("learner.max_response_tokens", learner.max_response_tokens, learner.max_response_tokens >= 0, ">= 0"),
        ("learner.logprob_chunk_tokens", learner.logprob_chunk_tokens, learner.logprob_chunk_tokens >= 0, ">= 0"),
        ("learner.cpu_threads", learner.cpu_threads, learner.cpu_threads >= 0, ">= 0 (0 = the reserved CPUs)"),
    )
    for key, value, ok, rule in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r} must be {rule}")
    return learner


def _check_sampler_logprobs(cfg: RunConfig) -> None:
    """The sampler's logprobs must be those of the distribution the learner computes: tempered softmax over the
    whole vocabulary. vLLM's top_p renormalises them over the nucleus (the learner applies no such mask), and
    raw_logprobs are taken before temperature."""
    learner = cfg.learner
    uses = learner.algorithm in _RATIO_ALGORITHMS or (learner.tis and learner.algorithm in _POLICY_GRADIENT_ALGORITHMS)
    if not uses:
        return
    why = f"learner.algorithm={learner.algorithm} (learner.tis={str(learner.tis).lower()}) compares with the sampler's logprobs"
    roles = ["executor"] + (["challenger"] if cfg.challenger.reward != "none" else [])
    for role in roles:
        top_p = _lookup(cfg, f"{role}.sampling.top_p")
        if top_p < 1.0:
            raise ConfigError(
                f"{role}.sampling.top_p={top_p}: {why}, and top_p < 1 renormalises those over the nucleus while the "
                f"learner's are over the whole vocabulary (it applies no such mask); set {role}.sampling.top_p=1.0, "
                "or use learner.algorithm=rft/sft/dpo"
                + ("" if learner.algorithm in _RATIO_ALGORITHMS else " or learner.tis=false")
            )
    if cfg.engine.logprobs_mode != "processed_logprobs":
        raise ConfigError(
            f"engine.logprobs_mode={cfg.engine.logprobs_mode}: {why}, which must be those of the sampling "
            "distribution (after temperature); set engine.logprobs_mode=processed_logprobs"
        )


def _to_omegaconf_errors(exc: Exception, prefix: str = "") -> ConfigError:
    # OmegaConf errors carry the offending key in `full_key`; restate them in one line the user can act on.
    key = prefix + (getattr(exc, "full_key", None) or "?")
    msg = str(exc).splitlines()[0]
    if type(exc).__name__ == "ConfigKeyError":
        return ConfigError(f"unknown config key {key!r}: {msg}. See docs/config.md for the valid keys")
    return ConfigError(f"bad value for config key {key!r}: {msg}")


def merge_config(schema: type, path: str | None = None, overrides: list[str] | None = None, prefix: str = ""):
    """An instance of the dataclass `schema`: its defaults <- a YAML file <- `key=value` overrides (each written
    with `prefix`, which error messages put back in front of the key). Every failure is one ConfigError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.structured(schema)
        if path:
            if not os.path.exists(path):
                raise ConfigError(f"config file {path!r} does not exist (configs ship in {CONFIG_DIR})")
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        for item in overrides or []:
            if "=" not in item:
                raise ConfigError(f"override {prefix}{item!r} is not of the form {prefix}key=value")
            if item.endswith("="):  # `key=` sets the empty string (OmegaConf alone would read None); null is None
                item += "''"
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _to_omegaconf_errors(exc, prefix) from None
    except Exception as exc:  # yaml parse errors and the like
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read config {path!r}: {exc}") from None


def load_config(path: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults <- YAML file <- `key=value` overrides; returns a validated RunConfig."""
    return validate(merge_config(RunConfig, path, overrides))


def to_yaml(cfg: RunConfig) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)
