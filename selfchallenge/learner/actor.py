"""The DeepSpeed learner: `LearnerActor` (one rank, a Ray actor or a plain object) and `LearnerGroup` (N ranks).

One iteration (`train`): the group turns the trajectories into a plan (batching.py: advantages, optimizer steps,
per-rank micro-batches), every rank first runs the no-grad scoring pass when the algorithm needs one (scoring.py:
the trainer's pi_old and importance weights, the critic's values and GAE), then its part of each step (forward,
algorithm loss, backward; the critic's value loss too) and calls `engine.step()` once per step; DeepSpeed reduces
gradients across ranks, clips and applies AdamW + the LR schedule. Gradient accumulation is ours (DeepSpeed's
`managed_gradient_accumulation=False`): micro-batch losses are already normalised for the whole step, so backward
never rescales them.

Weight sync (`sync_weights`, learner/weight_sync.py): full weights are gathered layer by layer (ZeRO-3 shards
included) and sent in a few buckets, as safetensors blobs through the object store or by collective broadcast.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import socket
import time
from datetime import timedelta
from typing import Any

import torch

from selfchallenge.config import LearnerConfig, validate_learner
from selfchallenge.learner import checkpoint, weight_sync
from selfchallenge.learner.algorithms import get_algorithm
from selfchallenge.learner.algorithms.ppo import value_loss
from selfchallenge.learner.batching import MicroBatch, RankPlan, build_plan, collate
from selfchallenge.learner.critic import Critic, load_value_model
from selfchallenge.learner.reference import load_reference
from selfchallenge.learner.scoring import chunked_head_matches, score_pass, scoring_metrics, token_logprobs
from selfchallenge.model_source import resolve_model
from selfchallenge.rollout.collective import WeightBroadcaster
from selfchallenge.rollout.weight_transfer import DEFAULT_BUCKET_BYTES

logger = logging.getLogger(__name__)

# Metrics that are weighted sums over tokens (or pairs): they add up over micro-batches and ranks.
ADDITIVE_METRICS = (
    "loss", "pg_loss", "nll", "kl", "clip_frac", "ratio", "approx_kl", "tokens", "sequences",
    "value_loss", "value_clip_frac", "dpo_margin", "dpo_accuracy", "dpo_chosen_reward", "dpo_rejected_reward", "pairs",
)  # fmt: skip


def mini_batch_size(cfg: LearnerConfig) -> int:
    return int(cfg.mini_batch_size)


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int):
    """LR multiplier for optimizer step s (0-based): linear warmup, then constant / linear / cosine to 0."""
    if schedule != "constant" and total_steps <= 0:
        raise ValueError(
            f"learner.lr_schedule={schedule} decays over the run and needs its length: pass total_steps "
            "(optimizer steps in the whole run) to LearnerGroup/LearnerActor, or use lr_schedule=constant"
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class LearnerActor:
    """One DeepSpeed rank holding the policy (the critic for actor-critic PPO; a frozen reference for DPO or when
    kl_coef > 0).

    Use it through `LearnerGroup`, or directly in one process for a single rank:
    `learner = LearnerActor(cfg, model_path); learner.setup(); learner.train(trajectories)`.
    `total_steps` (optimizer steps in the whole run) is needed by the cosine/linear LR schedules.
    `temperature` is the sampling temperature assumed for trajectories that do not record their own (older
    journals): each row's logits are divided by its trajectory's temperature (scoring.token_logprobs).
    """

    def __init__(
        self,
        cfg: LearnerConfig | dict,
        model_path: str,
        rank: int = 0,
        world_size: int = 1,
        dtype: str = "auto",
        total_steps: int = 0,
        temperature: float = 1.0,
    ):
        from selfchallenge.logs import redirect_actor_output

        redirect_actor_output(f"learner-rank{rank}")  # quiet run: DeepSpeed's and torch's output to the run's logs
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0 (the executor's sampling temperature)")
        self.temperature = temperature
        self.cfg = validate_learner(cfg if isinstance(cfg, LearnerConfig) else LearnerConfig(**cfg))
        self.model_path = model_path
        self.rank, self.world_size = rank, world_size
        self.algorithm = get_algorithm(self.cfg.algorithm)
        self.dtype_name = dtype
        self.total_steps = total_steps
        self.iteration = 0  # train() calls so far (seeds the step shuffling; saved in checkpoints)
        self.engine = None
        self.reference = None
        self.critic: Critic | None = None
        self._broadcaster: WeightBroadcaster | None = None  # rank 0's group with the engines (weight_sync=collective)

    # ---- setup ---------------------------------------------------------------------------------------------

    def node_address(self) -> tuple[str, int]:
        """(IP of this node, a free port): rank 0's answer becomes MASTER_ADDR/MASTER_PORT for every rank."""
        import ray

        return ray.util.get_node_ip_address(), free_port()

    def setup(self, master_addr: str = "127.0.0.1", master_port: int = 0) -> dict:
        """Join the process group, load the model and build the DeepSpeed engine (AdamW, schedule, ZeRO)."""
        import deepspeed
        from deepspeed.accelerator import get_accelerator

        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port or free_port()),
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",  # Ray gives each GPU actor exactly one visible device
        )
        if not torch.distributed.is_initialized():
            backend = get_accelerator().communication_backend_name()
            deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(minutes=30))
        torch.manual_seed(self.cfg.seed + self.rank)
        accelerator = get_accelerator()
        self.on_gpu = accelerator.device_name() != "cpu"
        self.device = torch.device(accelerator.device_name(), accelerator.current_device()) if self.on_gpu else "cpu"
        self.torch_dtype = self._resolve_dtype()
        ds_config = self._deepspeed_config()

        # A hub id becomes this node's cached folder, for the model, the critic, the reference and the export's tokenizer.
        self.model_path = resolve_model(self.model_path)
        model = checkpoint.load_causal_lm(self.model_path, self.torch_dtype)
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        self.engine = self._trainable_engine(model, self.cfg.lr, ds_config)
        if self.algorithm.critic:
            critic = load_value_model(self.model_path, self.torch_dtype, self.cfg.gradient_checkpointing)
            self.critic = Critic(
                self._trainable_engine(critic, self.cfg.critic_lr or self.cfg.lr, ds_config), self.device
            )
        if self.cfg.kl_coef > 0 or self.algorithm.reference:
            self.reference = load_reference(self.model_path, self.torch_dtype, ds_config, self.cfg.zero_stage)
        self.vocab_size = model.config.vocab_size
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        self.chunk_tokens = self.cfg.logprob_chunk_tokens
        if self.chunk_tokens and not chunked_head_matches(self.engine, self.device, self.vocab_size):
            logger.warning(
                "%s: logits are not head(decoder output); full logits (slower, more memory)", self.model_path
            )
            self.chunk_tokens = 0
        return {
            "rank": self.rank,
            "device": str(self.device),
            "dtype": str(self.torch_dtype),
            "vocab_size": self.vocab_size,
            "node_id": _ray_node_id(),
            "logprob_chunk_tokens": self.chunk_tokens,
            "torch_threads": torch.get_num_threads(),
        }

    def _resolve_dtype(self) -> torch.dtype:
        if self.dtype_name == "auto":
            return torch.bfloat16 if self.on_gpu else torch.float32
        if self.dtype_name not in ("float32", "bfloat16"):
            raise ValueError(
                f"model.dtype={self.dtype_name!r} is not supported by the learner; use auto, float32 or bfloat16"
            )
        return getattr(torch, self.dtype_name)

    def _deepspeed_config(self) -> dict:
        zero: dict[str, Any] = {"stage": self.cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True}
        return {
            # Batch sizes are nominal: the plan decides micro-batches and when a step happens.
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "managed_gradient_accumulation": False,
            "gradient_clipping": self.cfg.grad_clip,
            "zero_optimization": zero,
            "bf16": {"enabled": self.torch_dtype == torch.bfloat16},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }

    def _trainable_engine(self, model, lr: float, ds_config: dict):
        """A DeepSpeed engine with AdamW (norms and biases not decayed) and the LR schedule, in train mode."""
        import deepspeed

        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(self.cfg.lr_schedule, self.cfg.warmup_steps, self.total_steps)
        )
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=schedule, config=ds_config
        )
        engine.train()
        return engine

    # ---- training ------------------------------------------------------------------------------------------

    def train(self, trajectories: list[dict]) -> dict:
        """One iteration on this rank alone (`epochs` passes). With several ranks use LearnerGroup.train."""
        plan, stats = self.plan(trajectories)
        return summarize([self.run_plan(plan[0])], stats)

    def plan(self, trajectories: list[dict]) -> tuple[list[RankPlan], dict[str, float]]:
        """This iteration's plan (one rank) and its batch statistics."""
        if self.world_size != 1:
            raise RuntimeError("LearnerActor plans for one rank; with num_learners > 1 call LearnerGroup.train")
        self._require_setup()
        rng = random.Random(f"{self.cfg.seed}-{self.iteration}")
        return build_plan(
            trajectories,
            self.algorithm,
            self.cfg,
            1,
            rng,
            self.vocab_size,
            mini_batch_size(self.cfg),
            self.temperature,
        )

    def score(self, trajectories: list[dict]) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
        """The scoring pass alone on the current weights (no update): per trajectory id and response token,
        trainer_logprobs/tis (with tis) and values/advantages/returns (with a critic); plus its metric sums."""
        return self._score(self.plan(trajectories)[0][0])

    def _score(self, rank_plan: RankPlan) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
        with_logprobs = self.algorithm.policy_gradient and self.cfg.tis
        return score_pass(
            rank_plan.score,
            self.engine,
            self.critic,
            self.cfg,
            self.pad_id,
            self.device,
            with_logprobs,
            self.chunk_tokens,
        )

    def run_plan(self, rank_plan: RankPlan) -> dict:
        """Run this rank's share of an iteration: {"steps": per-step metric sums (ADDITIVE_METRICS), "scoring":
        the scoring pass's sums (SCORING_SUMS / SCORING_MAXES)}."""
        self._require_setup()
        start = time.perf_counter()
        scores, scoring = self._score(rank_plan) if rank_plan.score else ({}, {})
        if rank_plan.score:
            scoring["score_s"] = time.perf_counter() - start
        self.iteration += 1
        results = []
        for micro_batches in rank_plan.steps:
            start = time.perf_counter()
            sums = dict.fromkeys(ADDITIVE_METRICS, 0.0)
            for mb in micro_batches:
                batch = collate([dataclasses.replace(s, scores=scores.get(s.id, {})) for s in mb], self.pad_id)
                loss, metrics = self._forward_loss(batch)
                # The weights are normalised over the whole step on all ranks; DeepSpeed averages gradients over
                # ranks, so scale by world size to get the gradient of the global sum.
                self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
                if self.critic is not None:
                    metrics.update(self._critic_backward(batch))
                sums["loss"] += loss.item()
                sums["tokens"] += batch.num_loss_tokens
                sums["sequences"] += len(mb)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
            sums["grad_norm"] = checkpoint.step_with_grad_norm(self.engine, self.cfg.zero_stage)
            if self.critic is not None:
                sums["critic_grad_norm"] = checkpoint.step_with_grad_norm(self.critic.engine, self.cfg.zero_stage)
            sums["lr"] = self.engine.get_lr()[0]
            sums["step_s"] = time.perf_counter() - start
            results.append(sums)
        return {"steps": results, "scoring": scoring}

    def _forward_loss(self, batch: MicroBatch):
        device = self.device
        logprobs = token_logprobs(self.engine, batch, device, self.chunk_tokens)
        ref_logprobs = None
        if self.reference is not None:
            with torch.no_grad():
                ref_logprobs = token_logprobs(self.reference, batch, device, self.chunk_tokens)
        # pi_old: the trainer's own logprobs from the scoring pass (tis), else the sampler's
        old_logprobs = batch.scores.get("trainer_logprobs", batch.sampler_logprobs)
        advantages = batch.scores["advantages"] if self.critic is not None and batch.scores else batch.advantages
        tis = batch.scores.get("tis")
        return self.algorithm.loss(
            logprobs,
            old_logprobs.to(device),
            advantages.to(device),
            batch.weights.to(device),
            ref_logprobs,
            self.cfg,
            tis.to(device) if tis is not None else None,
        )

    def _critic_backward(self, batch: MicroBatch) -> dict[str, float]:
        """The clipped value loss of one micro-batch (same token weights as the policy), backward on the critic."""
        values = self.critic.values(batch)
        zeros = torch.zeros_like(values)
        old_values = batch.scores.get("values", zeros.cpu()).to(self.device)
        returns = batch.scores.get("returns", zeros.cpu()).to(self.device)
        loss, metrics = value_loss(values, old_values, returns, batch.weights.to(self.device), self.cfg.value_clip)
        self.critic.backward(loss * self.world_size)
        return metrics

    # ---- weights out ---------------------------------------------------------------------------------------

    def sync_weights(
        self,
        engines: list,
        version: int,
        timeout_s: float = 300.0,
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        strategy: str = "blobs",
        tensor_parallel_size: int = 1,
    ) -> dict:
        """Push the current weights to every rollout engine (learner/weight_sync.py); returns timings.

        Collective under ZeRO-3: every rank must call it; only rank 0 sends.
        """
        self._require_setup()
        send = self.rank == 0
        if strategy == "blobs":
            return weight_sync.sync_blobs(self.engine.module, send, engines, version, timeout_s, bucket_bytes)
        if strategy == "shm":
            return weight_sync.sync_shm(self.engine.module, send, engines, version, timeout_s, _ray_node_id())
        if strategy != "collective":
            raise ValueError(f"engine.weight_sync={strategy!r}: use one of {list(weight_sync.STRATEGIES)}")
        if send and self._broadcaster is None:
            import ray

            backend = "nccl" if self.on_gpu else "gloo"
            self._broadcaster = WeightBroadcaster(ray.util.get_node_ip_address(), backend, self.device)
        return weight_sync.sync_collective(
            self.engine.module, self._broadcaster, engines, version, timeout_s, bucket_bytes, tensor_parallel_size
        )

    def full_weights(self) -> dict[str, torch.Tensor]:
        """All weights as CPU tensors (HF names) on rank 0; {} elsewhere. Collective under ZeRO-3."""
        self._require_setup()
        return {n: t.clone() for n, t in checkpoint.iter_full_weights(self.engine.module, keep=self.rank == 0)}

    def optimizer_state(self) -> dict[str, Any]:
        """This rank's AdamW state tensors (flattened order) and step count, for checks and debugging."""
        self._require_setup()
        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        tensors = [
            v.detach().cpu().clone() for state in inner.state.values() for v in state.values() if torch.is_tensor(v)
        ]
        state = {"tensors": tensors, "global_steps": self.engine.global_steps, "lr": self.engine.get_lr()[0]}
        if self.critic is not None:
            state["critic_tensors"] = self.critic.optimizer_tensors()
            state["critic_global_steps"] = self.critic.engine.global_steps
        return state

    def critic_weights(self) -> dict[str, torch.Tensor]:
        """The critic's full weights (rank 0; {} elsewhere, and without a critic). Collective under ZeRO-3."""
        self._require_setup()
        if self.critic is None:
            return {}
        return dict(checkpoint.iter_full_weights(self.critic.engine.module, keep=self.rank == 0))

    def export_hf(self, out_dir: str) -> str | None:
        """A Hugging Face model folder (+ the tokenizer of model.path) that transformers and vLLM load."""
        self._require_setup()
        tokenizer = self.model_path if checkpoint.has_tokenizer(self.model_path) else None
        return checkpoint.export_hf(self.engine.module, out_dir, tokenizer, write=self.rank == 0)

    def save_checkpoint(self, path: str) -> str:
        """DeepSpeed checkpoint of weights, optimizer, LR schedule and learner counters (resume exactly); the
        critic's (weights, its own optimizer and schedule) goes to `<path>/critic`."""
        self._require_setup()
        state = {
            "iteration": self.iteration,
            "learner_config": dataclasses.asdict(self.cfg),
            "torch_rng": torch.get_rng_state(),
        }
        checkpoint.save_checkpoint(self.engine, path, state)
        if self.critic is not None:
            self.critic.save(path)
        return path

    def load_checkpoint(self, path: str) -> dict:
        self._require_setup()
        state = checkpoint.load_checkpoint(self.engine, path)
        if self.critic is not None:
            self.critic.load(path)
        self.iteration = int(state.get("iteration", 0))
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        return {"iteration": self.iteration, "global_steps": self.engine.global_steps}

    def _require_setup(self) -> None:
        if self.engine is None:
            raise RuntimeError("LearnerActor.setup() must run before training, syncing or checkpointing")


def summarize(results: list[dict], stats: dict[str, float]) -> dict:
    """`run_plan` results from every rank -> one metrics dict: additive step metrics summed over ranks and averaged
    over steps (each step's own under `per_step`); the scoring pass's sums turned into means over loss tokens (its
    max stays a max)."""
    metrics: dict[str, float] = dict(stats)
    metrics.update(scoring_metrics([r["scoring"] for r in results]))
    per_rank = [r["steps"] for r in results]
    steps = len(per_rank[0]) if per_rank else 0
    metrics["optimizer_steps"] = float(steps)
    if steps == 0:
        return metrics
    merged = []
    for i in range(steps):
        step = {k: sum(rank[i].get(k, 0.0) for rank in per_rank) for k in per_rank[0][i] if k in ADDITIVE_METRICS}
        step.update(grad_norm=per_rank[0][i]["grad_norm"], lr=per_rank[0][i]["lr"])
        if "critic_grad_norm" in per_rank[0][i]:
            step["critic_grad_norm"] = per_rank[0][i]["critic_grad_norm"]
        step["step_s"] = max(rank[i]["step_s"] for rank in per_rank)
        merged.append(step)
    for key in merged[0]:
        metrics[key] = sum(s[key] for s in merged) / steps
    metrics["first_loss"], metrics["last_loss"] = merged[0]["loss"], merged[-1]["loss"]
    metrics["train_s"] = sum(s["step_s"] for s in merged)
    metrics["tokens_per_s"] = sum(s["tokens"] for s in merged) / max(metrics["train_s"], 1e-9)
    metrics["per_step"] = merged  # the trackers plot these at a global optimizer-step count
    return metrics


def _ray_node_id() -> str | None:
    """The Ray node this runs on; None without Ray (the learner also runs as a plain object, bench/gpu_check.py)."""
    try:
        import ray
    except ImportError:
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class LearnerGroup:
    """`learner.num_learners` LearnerActors in one placement group, driven together.

    Creates the actors (one bundle each: CPUs, plus one GPU when the cluster has GPUs), gives every rank
    MASTER_ADDR/PORT (rank 0's node), RANK, WORLD_SIZE and LOCAL_RANK, and shards each iteration across them.
    """

    def __init__(
        self,
        cfg: LearnerConfig,
        model_path: str,
        *,
        dtype: str = "auto",
        total_steps: int = 0,
        temperature: float = 1.0,
        num_cpus_per_learner: float = 1.0,
        num_gpus_per_learner: float | None = None,
        env_vars: dict[str, str] | None = None,
        ready_timeout_s: float = 600.0,
    ):
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.cfg = validate_learner(cfg)
        self.algorithm = get_algorithm(cfg.algorithm)
        self.temperature = temperature
        self.iteration = 0
        n = cfg.num_learners
        gpus = num_gpus_per_learner
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        bundle = {"CPU": num_cpus_per_learner, **({"GPU": gpus} if gpus else {})}
        if cfg.node_resource:
            bundle[cfg.node_resource] = 1.0
        self.placement_group = placement_group([bundle] * n, strategy="PACK")
        try:
            ray.get(self.placement_group.ready(), timeout=ready_timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.util.remove_placement_group(self.placement_group)
            raise RuntimeError(
                f"could not reserve {n} learner(s) x {bundle} within {ready_timeout_s:.0f}s; the cluster has "
                f"{ray.cluster_resources()}. Lower learner.num_learners or add resources"
            ) from None
        from selfchallenge.logs import actor_runtime_env

        remote_cls = ray.remote(LearnerActor)
        options: dict[str, Any] = {"num_cpus": num_cpus_per_learner, "num_gpus": gpus}
        if cfg.cpu_threads and not gpus:  # Ray would set OMP_NUM_THREADS to the reserved CPUs otherwise
            env_vars = {"OMP_NUM_THREADS": str(cfg.cpu_threads), **(env_vars or {})}
        runtime_env = actor_runtime_env(env_vars)
        if runtime_env:
            options["runtime_env"] = runtime_env
        self.actors = [
            remote_cls.options(
                **options,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement_group, placement_group_bundle_index=i
                ),
            ).remote(dataclasses.asdict(cfg), model_path, i, n, dtype, total_steps, temperature)
            for i in range(n)
        ]
        try:
            master_addr, master_port = ray.get(self.actors[0].node_address.remote(), timeout=ready_timeout_s)
            setups = [a.setup.remote(master_addr, master_port) for a in self.actors]
            self.info = ray.get(setups, timeout=ready_timeout_s)
        except Exception as exc:
            self.shutdown()
            cause = getattr(exc, "cause", None)  # a RayTaskError carries the learner's own exception
            raise (cause if isinstance(cause, Exception) else exc) from None
        self.vocab_size = self.info[0]["vocab_size"]

    def train(self, trajectories: list) -> dict:
        """One iteration (`epochs` passes) over the trajectories (Trajectory records or dicts); returns metrics."""
        import ray

        rng = random.Random(f"{self.cfg.seed}-{self.iteration}")
        plan, stats = build_plan(
            trajectories,
            self.algorithm,
            self.cfg,
            len(self.actors),
            rng,
            self.vocab_size,
            mini_batch_size(self.cfg),
            self.temperature,
        )
        per_rank = ray.get([actor.run_plan.remote(plan[rank]) for rank, actor in enumerate(self.actors)])
        self.iteration += 1
        return summarize(per_rank, stats)

    def sync_weights(
        self,
        engines: list,
        version: int,
        timeout_s: float = 300.0,
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        strategy: str = "blobs",
        tensor_parallel_size: int = 1,
    ) -> dict:
        """Push the weights to every engine with `strategy` (learner/weight_sync.py); rank 0's timings."""
        return self._all("sync_weights", engines, version, timeout_s, bucket_bytes, strategy, tensor_parallel_size)

    def save_checkpoint(self, path: str) -> str:
        return self._all("save_checkpoint", path)

    def load_checkpoint(self, path: str) -> dict:
        state = self._all("load_checkpoint", path)
        self.iteration = state["iteration"]
        return state

    def export_hf(self, out_dir: str) -> str:
        return self._all("export_hf", out_dir)

    def full_weights(self) -> dict:
        return self._all("full_weights")

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        ray.util.remove_placement_group(self.placement_group)
        self.actors = []

    def _all(self, method: str, *args):
        """Call a collective method on every rank; rank 0's answer."""
        import ray

        return ray.get([getattr(actor, method).remote(*args) for actor in self.actors])[0]
