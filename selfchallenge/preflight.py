"""`--dry-run`: what a run needs, checked before anything starts (`selfchallenge run|gen-tasks|eval --dry-run`,
`python ray_jobs/train.py --dry-run ...`). Each check says ok, warn (the run may still work: on a cluster the
nodes, not this machine, must have it) or fail, with the fix. Nothing is started or written."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .config import RunConfig

GIB = 1 << 30


@dataclass
class Finding:
    check: str
    status: str  # ok | warn | fail
    detail: str


def _on_cluster(cfg: RunConfig) -> bool:
    return bool(cfg.ray.address or os.environ.get("RAY_ADDRESS"))


def check_model(cfg: RunConfig) -> Finding:
    from .model_source import cached_model, looks_like_hub_id

    path = cfg.model.path
    if path == "tiny":
        return Finding("model", "ok", "model.path=tiny: the tiny local model, built once at start")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            return Finding("model", "fail", f"model.path={path!r} has no config.json: not a Hugging Face model folder")
        return Finding("model", "ok", f"model.path={path!r}: a Hugging Face folder")
    if not looks_like_hub_id(path):
        return Finding("model", "fail", f"model.path={path!r} is neither a folder nor a hub id (org/name)")
    cached = cached_model(path)
    if cached:
        return Finding("model", "ok", f"model.path={path!r}: in the Hugging Face cache ({cached})")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return Finding("model", "fail", f"model.path={path!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1; "
                       f"run `huggingface-cli download {path}` first")  # fmt: skip
    return Finding("model", "warn", f"model.path={path!r} is not in this machine's Hugging Face cache: each engine "
                   "and learner node downloads it (network access, HF_TOKEN for gated models)")  # fmt: skip


def _existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_run_dir(cfg: RunConfig) -> list[Finding]:
    run_dir = os.path.abspath(cfg.run_dir)
    parent = _existing_parent(run_dir)
    findings = []
    if not os.access(parent, os.W_OK | os.X_OK):
        findings.append(Finding("run_dir", "fail", f"run_dir={cfg.run_dir!r}: {parent} is not writable"))
    else:
        state = "exists (a rerun resumes it)" if parent == run_dir else f"will be created under {parent}"
        findings.append(Finding("run_dir", "ok", f"run_dir={run_dir} {state}"))
    if _on_cluster(cfg) and (not os.path.isabs(cfg.run_dir) or run_dir.startswith("/tmp")):
        findings.append(Finding("run_dir", "warn", "on a cluster run_dir must be an absolute path on storage every "
                                "node (and a resubmitted job) sees, e.g. /shared/runs/<name> (cluster.yaml)"))  # fmt: skip
    free = shutil.disk_usage(parent).free
    need = _checkpoint_bytes(cfg) * max(1, cfg.checkpoint.keep_last or cfg.iterations)
    if need and free < need:
        findings.append(Finding("disk", "warn", f"{free / GIB:.1f} GiB free under {parent}; the checkpoints kept need "
                                f"about {need / GIB:.1f} GiB (checkpoint.keep_last bounds them)"))  # fmt: skip
    return findings


def _checkpoint_bytes(cfg: RunConfig) -> int:
    """One iteration's checkpoint, estimated from the model folder's weights: the HF export plus DeepSpeed's fp32
    master weights and two Adam moments (about 8x bf16 weights). 0 when the weights are not on this machine."""
    from .model_source import weights_bytes

    return 9 * weights_bytes(cfg.model.path)


def check_resources(cfg: RunConfig) -> list[Finding]:
    """What the engines and learners ask for against what this machine has (a cluster's nodes are not visible
    from here before the job starts)."""
    engines = cfg.engine.num_engines + (cfg.executor.user_model == "frozen")  # the frozen user has its own engine
    engines_cpu = engines * cfg.engine.num_cpus_per_engine
    gpus_planned = engines * cfg.engine.tensor_parallel_size + cfg.learner.num_learners
    cpus = cfg.ray.num_cpus or os.cpu_count() or 1
    if _on_cluster(cfg):
        return [Finding("resources", "ok", f"{gpus_planned} GPUs planned (engines x tensor parallel + learners) on the "
                        "cluster; Ray places them when the job starts")]  # fmt: skip
    needed = engines_cpu + cfg.learner.num_learners  # the sandbox actor asks for none
    if needed > cpus:
        return [Finding("resources", "warn", f"this machine gives Ray {cpus} CPUs; {engines} engine(s) and "
                        f"{cfg.learner.num_learners} learner(s) ask for {needed:g} on CPU (or {gpus_planned} GPUs): "
                        "this config is meant for a cluster (ray job submit, README)")]  # fmt: skip
    return [Finding("resources", "ok", f"{needed:g} of {cpus} CPUs")]


def check_sandbox(cfg: RunConfig) -> Finding:
    from .runtime import data_dirs
    from .sandbox.backend import SandboxUnavailable, make_backend

    if _on_cluster(cfg) and cfg.sandbox.node_resource:
        return Finding("sandbox", "ok", f"on the nodes with the {cfg.sandbox.node_resource!r} resource; they need Docker "
                       "and the image (cluster.yaml's setup commands build it)")  # fmt: skip
    try:
        backend = make_backend(cfg.sandbox, data_dirs(cfg))
    except SandboxUnavailable as exc:
        return Finding("sandbox", "fail", str(exc))
    return Finding("sandbox", "ok", f"{type(backend).__name__} works here (sandbox.backend={cfg.sandbox.backend})")


def preflight(cfg: RunConfig) -> list[Finding]:
    data = [cfg.eval.heldout_tasks, cfg.eval.m3tooleval_tasks, *cfg.eval.taubench_tasks.values()]
    data += [spec.env_config["data_dir"] for spec in cfg.envs if spec.env_config.get("data_dir")]
    findings = [
        Finding("config", "ok", f"{len(cfg.envs)} environment(s): {', '.join(s.name for s in cfg.envs)}; "
                f"{cfg.iterations} iteration(s), learner.algorithm={cfg.learner.algorithm}"),
        Finding("data", "ok", ", ".join(filter(None, data)) or "no benchmark data configured"),
        check_model(cfg),
        *check_run_dir(cfg),
        *check_resources(cfg),
        check_sandbox(cfg),
    ]  # fmt: skip
    return findings


def print_preflight(cfg: RunConfig) -> int:
    """Print the findings; 0 when nothing failed, else 2 (the code of a bad config)."""
    findings = preflight(cfg)
    for finding in findings:
        print(f"  {finding.status:4s}  {finding.check:9s}  {finding.detail}")
    failed = [f.check for f in findings if f.status == "fail"]
    print(f"dry run: {'ready' if not failed else 'not ready: ' + ', '.join(failed)} (nothing was started)")
    return 2 if failed else 0
