"""The DeepSpeed learner: `LearnerActor` (one rank, a Ray actor or a plain object) and `LearnerGroup` (N ranks).

One iteration (`train`): the group turns the trajectories into a plan (batching.py: advantages, optimizer steps,
per-rank micro-batches), every rank runs its part of each step (forward, algorithm loss, backward) and calls
`engine.step()` once per step; DeepSpeed reduces gradients across ranks, clips and applies AdamW + the LR
schedule. Gradient accumulation is ours (DeepSpeed's `managed_gradient_accumulation=False`): micro-batch losses
are already normalised for the whole step, so backward never rescales them.

Weight sync (`sync_weights`): full weights are gathered layer by layer (ZeRO-3 shards included), packed into a
few safetensors buckets (rollout/weight_transfer.py), put once into the Ray object store and sent with one
`update_weights(buckets, version)` call per engine, with a timeout. Never one call per parameter.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import socket
import time
from datetime import timedelta
from typing import Any

import torch

from selfchallenge.config import LearnerConfig
from selfchallenge.learner import checkpoint
from selfchallenge.learner.algorithms import get_algorithm
from selfchallenge.learner.batching import MicroBatch, TrainSequence, build_plan, collate
from selfchallenge.rollout.weight_transfer import DEFAULT_BUCKET_BYTES, pack_buckets

# Metrics that are weighted sums over tokens: they add up over micro-batches and ranks.
ADDITIVE_METRICS = ("loss", "pg_loss", "nll", "kl", "clip_frac", "ratio", "approx_kl", "tokens", "sequences")


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
    """One DeepSpeed rank holding the policy (and, when kl_coef > 0, a frozen reference).

    Use it through `LearnerGroup`, or directly in one process for a single rank:
    `learner = LearnerActor(cfg, model_path); learner.setup(); learner.train(trajectories)`.
    `total_steps` (optimizer steps in the whole run) is needed by the cosine/linear LR schedules.
    `temperature` is the executor's sampling temperature: the engine reports logprobs of the tempered
    distribution, so the learner divides its logits by the same value (importance ratios compare like with like).
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
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0 (the executor's sampling temperature)")
        self.temperature = temperature
        self.cfg = cfg if isinstance(cfg, LearnerConfig) else LearnerConfig(**cfg)
        self.model_path = model_path
        self.rank, self.world_size = rank, world_size
        self.algorithm = get_algorithm(self.cfg.algorithm)
        self.dtype_name = dtype
        self.total_steps = total_steps
        self.iteration = 0  # train() calls so far (seeds the step shuffling; saved in checkpoints)
        self.engine = None
        self.reference = None

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

        model = self._load_model()
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]  # norms and biases are not decayed
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(self.cfg.lr_schedule, self.cfg.warmup_steps, self.total_steps)
        )
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=schedule, config=ds_config
        )
        self.engine.train()
        if self.cfg.kl_coef > 0:
            self.reference = self._load_reference(ds_config)
        self.vocab_size = model.config.vocab_size
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        return {
            "rank": self.rank,
            "device": str(self.device),
            "dtype": str(self.torch_dtype),
            "vocab_size": self.vocab_size,
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

    def _load_model(self):
        from transformers import AutoModelForCausalLM

        if not os.path.isdir(self.model_path):
            raise FileNotFoundError(f"model.path={self.model_path!r} is not a Hugging Face model folder")
        # Loaded whole in host memory; deepspeed.initialize then moves it to the device (ZeRO-3: partitions it).
        return AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.torch_dtype)

    def _load_reference(self, ds_config: dict):
        import deepspeed

        reference = self._load_model()
        reference.requires_grad_(False)
        config = {k: v for k, v in ds_config.items() if k in ("train_micro_batch_size_per_gpu", "bf16")}
        config["zero_optimization"] = {"stage": 3 if self.cfg.zero_stage == 3 else 0}
        engine, *_ = deepspeed.initialize(model=reference, config=config)
        engine.eval()
        return engine

    # ---- training ------------------------------------------------------------------------------------------

    def train(self, trajectories: list[dict]) -> dict:
        """One iteration on this rank alone (`epochs` passes). With several ranks use LearnerGroup.train."""
        if self.world_size != 1:
            raise RuntimeError("LearnerActor.train plans for one rank; with num_learners > 1 call LearnerGroup.train")
        self._require_setup()
        rng = random.Random(f"{self.cfg.seed}-{self.iteration}")
        plan, stats = build_plan(
            trajectories, self.algorithm, self.cfg, 1, rng, self.vocab_size, mini_batch_size(self.cfg)
        )
        return summarize([self.run_plan(plan[0])], stats)

    def run_plan(self, steps: list[list[list[TrainSequence]]]) -> list[dict]:
        """Run this rank's share of an iteration; returns per-step metric sums (see ADDITIVE_METRICS)."""
        self._require_setup()
        self.iteration += 1
        results = []
        for micro_batches in steps:
            start = time.perf_counter()
            sums = dict.fromkeys(ADDITIVE_METRICS, 0.0)
            for mb in micro_batches:
                batch = collate(mb, self.pad_id)
                loss, metrics = self._forward_loss(batch)
                # The weights are normalised over the whole step on all ranks; DeepSpeed averages gradients over
                # ranks, so scale by world size to get the gradient of the global sum.
                self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
                sums["loss"] += loss.item()
                sums["tokens"] += batch.num_loss_tokens
                sums["sequences"] += len(mb)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
            local_norm = self._local_grad_norm() if self.cfg.zero_stage == 0 else None
            self.engine.step()
            grad_norm = self.engine.get_global_grad_norm()
            if grad_norm is None:
                grad_norm = local_norm
            sums["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
            sums["lr"] = self.engine.get_lr()[0]
            sums["step_s"] = time.perf_counter() - start
            results.append(sums)
        return results

    def _forward_loss(self, batch: MicroBatch):
        device = self.device
        logprobs = self._token_logprobs(self.engine, batch)
        ref_logprobs = None
        if self.reference is not None:
            with torch.no_grad():
                ref_logprobs = self._token_logprobs(self.reference, batch)
        return self.algorithm.loss(
            logprobs,
            batch.old_logprobs.to(device),
            batch.advantages.to(device),
            batch.weights.to(device),
            ref_logprobs,
            self.cfg,
        )

    def _token_logprobs(self, model, batch: MicroBatch) -> torch.Tensor:
        """log pi(target_t | tokens_<=t) in float32, [B, L]."""
        out = model(
            input_ids=batch.input_ids.to(self.device),
            attention_mask=batch.attention_mask.to(self.device),
            use_cache=False,
        )
        logits = out.logits.float()
        if self.temperature != 1.0:  # the engine reports logprobs of the tempered distribution it sampled from
            logits = logits / self.temperature
        targets = batch.targets.to(self.device).unsqueeze(-1)
        return (logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)).float()

    def _local_grad_norm(self) -> float | None:
        # ZeRO-0 in fp32 does not report its norm; this is the pre-clip norm of this rank's gradients (the global
        # one with a single learner: with several, stage 0 averages gradients only inside engine.step()).
        grads = [p.grad.detach().float().norm() for p in self.engine.module.parameters() if p.grad is not None]
        return torch.stack(grads).norm().item() if grads else None

    # ---- weights out ---------------------------------------------------------------------------------------

    def sync_weights(
        self, engines: list, version: int, timeout_s: float = 300.0, bucket_bytes: int = DEFAULT_BUCKET_BYTES
    ) -> dict:
        """Push the current weights to every rollout engine as packed buckets; returns timings.

        Collective under ZeRO-3: every rank must call it; only rank 0 packs and sends.
        """
        import ray

        self._require_setup()
        start = time.perf_counter()
        send = self.rank == 0
        weights = checkpoint.iter_full_weights(self.engine.module, keep=send)
        if not send:
            for _ in weights:
                pass
            return {"gather_pack_s": time.perf_counter() - start}
        buckets = list(pack_buckets(weights, bucket_bytes))
        packed = time.perf_counter()
        ref = ray.put(buckets)  # one copy in the object store, shared by all engines
        pending = {engine.update_weights.remote(ref, version): i for i, engine in enumerate(engines)}
        ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        if not_ready:
            late = sorted(pending[r] for r in not_ready)
            raise TimeoutError(
                f"weight sync to version {version}: engines {late} did not finish update_weights within "
                f"{timeout_s:.0f}s; raise engine.weight_sync_timeout_s or check those engines' logs"
            )
        ray.get(ready)  # surfaces an engine's exception
        done = time.perf_counter()
        return {
            "gather_pack_s": packed - start,
            "send_s": done - packed,
            "total_s": done - start,
            "num_buckets": len(buckets),
            "bytes": sum(len(b) for b in buckets),
            "engines": len(engines),
            "version": version,
        }

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
        return {"tensors": tensors, "global_steps": self.engine.global_steps, "lr": self.engine.get_lr()[0]}

    def export_hf(self, out_dir: str) -> str | None:
        """A Hugging Face model folder (+ the tokenizer of model.path) that transformers and vLLM load."""
        self._require_setup()
        tokenizer = self.model_path if checkpoint.has_tokenizer(self.model_path) else None
        return checkpoint.export_hf(self.engine.module, out_dir, tokenizer, write=self.rank == 0)

    def save_checkpoint(self, path: str) -> str:
        """DeepSpeed checkpoint of weights, optimizer, LR schedule and learner counters (resume exactly)."""
        self._require_setup()
        state = {
            "iteration": self.iteration,
            "learner_config": dataclasses.asdict(self.cfg),
            "torch_rng": torch.get_rng_state(),
        }
        return checkpoint.save_checkpoint(self.engine, path, state)

    def load_checkpoint(self, path: str) -> dict:
        self._require_setup()
        state = checkpoint.load_checkpoint(self.engine, path)
        self.iteration = int(state.get("iteration", 0))
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        return {"iteration": self.iteration, "global_steps": self.engine.global_steps}

    def _require_setup(self) -> None:
        if self.engine is None:
            raise RuntimeError("LearnerActor.setup() must run before training, syncing or checkpointing")


def summarize(per_rank: list[list[dict]], stats: dict[str, float]) -> dict:
    """Per-step sums from every rank -> one metrics dict (additive metrics summed over ranks, averaged over steps)."""
    metrics: dict[str, float] = dict(stats)
    steps = len(per_rank[0]) if per_rank else 0
    metrics["optimizer_steps"] = float(steps)
    if steps == 0:
        return metrics
    merged = []
    for i in range(steps):
        step = {k: sum(rank[i].get(k, 0.0) for rank in per_rank) for k in per_rank[0][i] if k in ADDITIVE_METRICS}
        step.update(grad_norm=per_rank[0][i]["grad_norm"], lr=per_rank[0][i]["lr"])
        step["step_s"] = max(rank[i]["step_s"] for rank in per_rank)
        merged.append(step)
    for key in merged[0]:
        metrics[key] = sum(s[key] for s in merged) / steps
    metrics["first_loss"], metrics["last_loss"] = merged[0]["loss"], merged[-1]["loss"]
    metrics["train_s"] = sum(s["step_s"] for s in merged)
    metrics["tokens_per_s"] = sum(s["tokens"] for s in merged) / max(metrics["train_s"], 1e-9)
    return metrics


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

        self.cfg = cfg
        self.algorithm = get_algorithm(cfg.algorithm)
        self.iteration = 0
        n = cfg.num_learners
        gpus = num_gpus_per_learner
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        bundle = {"CPU": num_cpus_per_learner, **({"GPU": gpus} if gpus else {})}
        self.placement_group = placement_group([bundle] * n, strategy="PACK")
        try:
            ray.get(self.placement_group.ready(), timeout=ready_timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.util.remove_placement_group(self.placement_group)
            raise RuntimeError(
                f"could not reserve {n} learner(s) x {bundle} within {ready_timeout_s:.0f}s; the cluster has "
                f"{ray.cluster_resources()}. Lower learner.num_learners or add resources"
            ) from None
        remote_cls = ray.remote(LearnerActor)
        options: dict[str, Any] = {"num_cpus": num_cpus_per_learner, "num_gpus": gpus}
        if env_vars:
            options["runtime_env"] = {"env_vars": env_vars}
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
            trajectories, self.algorithm, self.cfg, len(self.actors), rng, self.vocab_size, mini_batch_size(self.cfg)
        )
        per_rank = ray.get([actor.run_plan.remote(plan[rank]) for rank, actor in enumerate(self.actors)])
        self.iteration += 1
        return summarize(per_rank, stats)

    def sync_weights(
        self, engines: list, version: int, timeout_s: float = 300.0, bucket_bytes: int = DEFAULT_BUCKET_BYTES
    ) -> dict:
        """Push the weights to every engine (`engine.update_weights.remote(buckets, version)`); rank 0's timings."""
        return self._all("sync_weights", engines, version, timeout_s, bucket_bytes)

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
