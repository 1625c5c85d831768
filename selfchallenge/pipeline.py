"""The self-challenging loop as resumable stages.

Per iteration i (outputs under <run_dir>/iter_<i>/):
  propose  challenger episodes (explore, then write a Code-as-Task)   -> proposals.jsonl, tasks_proposed/, challenger_trajectories/
  check    the filter in the sandbox, then near-duplicate removal     -> checks.jsonl, tasks_kept/ (+ tasks_kept.jsonl)
  solve    k executor episodes per kept task, verifier reward          -> rollouts.jsonl, trajectories/
  train    the learner update, then checkpoint + HF export + weight sync -> <run_dir>/checkpoints/iter_<i>/
  eval     benchmark / held-out evaluation                            -> eval.jsonl (+ eval_before.jsonl at start)
Each stage writes its outputs before the next starts and is recorded in <run_dir>/state.json once complete.
pipeline.async_rollouts: iteration i's train runs in a thread while iteration i+1's propose/check/solve run here,
with the weights the engines hold; they receive iteration i's weights once both are done (_train_while_generating).
Episode stages journal every finished episode at once (rollout/runner.py), so rerunning the same command resumes
a killed run from where it stopped, without losing or repeating an episode.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import Counter

from . import config as config_mod
from .agents.prompts import challenger_system_prompt, executor_opening
from .config import ConfigError, RunConfig
from .envs import is_dialogue, make_env
from .eval.harness import eval_items_of
from .rollout.challenger import ChallengerSettings, run_challenger_episode, score_challenger
from .rollout.executor import INFRA_REASONS, ExecutorSettings, run_executor_episode
from .rollout.policy import episode_policy
from .rollout.runner import GIVE_UP_AFTER, Journal, StageIncomplete, describe_loss, run_journaled
from .rollout.trajectory import Trajectory, save_trajectories, successes_by_task
from .run_dir import RunDir
from .tasks.check_rule import funnel_counts
from .tasks.dedup import cap_per_instruction, deduplicate
from .tasks.filter_modes import deciding_stage, reaches_executor
from .tasks.parser import nothing_kept_hint
from .tasks.record import CaTTask, save_tasks, save_tasks_jsonl
from .tracking import MetricsLogger, sample_rows

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- stages
def _stop_if_lost(stage: str, records: list[dict], what: str, journal: Journal) -> None:
    """Raise StageIncomplete before the stage logs or marks anything when some record is an infrastructure loss
    that a rerun may still retry; those given up (lost in GIVE_UP_AFTER runs) are only reported."""
    lost = [r for r in records if r.get("reason") in INFRA_REASONS]
    given_up = [r for r in lost if journal.given_up(str(r[journal.key]))]
    if given_up:
        print(f"[{stage}] {len(given_up)} {what} given up after {GIVE_UP_AFTER} runs lost to infrastructure errors "
              f"(not trained on; see {journal.path})")  # fmt: skip
    if len(lost) > len(given_up):
        raise StageIncomplete(
            f"{stage}: {len(lost) - len(given_up)} of {len(records)} {what} lost to infrastructure errors (see "
            f"{journal.path}); the stage is not marked done: rerun the same command to retry them (the others are kept)"
        )


def _task_budget(cfg: RunConfig) -> list[tuple[int, int]]:
    """(env spec index, number of challenger episodes) per environment, split by weight."""
    total = sum(spec.weight for spec in cfg.envs)
    counts = [int(cfg.challenger.tasks_per_iteration * spec.weight / total) for spec in cfg.envs]
    for i in range(cfg.challenger.tasks_per_iteration - sum(counts)):
        counts[i % len(counts)] += 1
    return list(enumerate(counts))


def stage_propose(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger) -> None:
    out = run.iter_dir(iteration)
    journal = Journal(os.path.join(out, "proposals.jsonl"))
    policy, chat, sandbox = rt.policy(generation=True), rt.chat, rt.sandbox
    settings = ChallengerSettings(
        explore_turns=cfg.challenger.explore_turns,
        max_task_tokens=cfg.challenger.max_tokens,
        max_episode_tokens=cfg.engine.max_model_len,
        sampling=_sampling(cfg.challenger.sampling),
        allow_inputs=cfg.challenger.inputs,
    )
    jobs = []
    for spec_index, count in _task_budget(cfg):
        spec = cfg.envs[spec_index]
        world = make_env(spec.name, spec.env_config)
        system = challenger_system_prompt(spec.name, world, settings.explore_turns, cfg.challenger.inputs)
        for k in range(count):
            key = f"it{iteration}-env{spec_index}-{k}"

            async def job(spec=spec, system=system, key=key) -> dict:
                result = await run_challenger_episode(
                    spec.name,
                    spec.env_config,
                    episode_policy(policy, cfg.engine, key),
                    sandbox,
                    chat,
                    system,
                    settings,
                    episode_id=key,
                    provenance={"iteration": iteration, "model": _writer(cfg, rt), "mode": cfg.mode},
                )
                return {
                    "id": key,
                    "env": spec.name,
                    "reason": result.parse.reason,
                    "detail": result.parse.detail,
                    "task": result.parse.task.to_dict() if result.parse.task else None,
                    "trajectory": result.trajectory.to_dict(),
                }

            jobs.append((key, job))

    def on_error(key: str, exc: BaseException) -> dict:
        logger.warning("challenger episode %s lost to an infrastructure error: %s", key, describe_loss(exc))
        return {"id": key, "env": None, "reason": "infra_error", "detail": str(exc), "task": None, "trajectory": None}

    records = asyncio.run(run_journaled(jobs, journal, cfg.executor.concurrency, f"iter {iteration} propose", on_error))
    _stop_if_lost(f"iter_{iteration}/propose", records, "challenger episodes", journal)
    if iteration == 0 and cfg.challenger.seed_tasks:
        from .tasks.record import load_tasks

        for task in load_tasks(cfg.challenger.seed_tasks):
            task.provenance = {**task.provenance, "source": "seed_tasks", "iteration": iteration}
            seed = {
                "id": f"seed/{task.id}",
                "env": task.env,
                "reason": "parsed",
                "detail": "seed task",
                "task": task.to_dict(),
                "trajectory": None,
            }
            journal.append(seed)  # (a resumed stage journaled it already: then a no-op)
            records.append(seed)  # after the episodes, in job order, not the order the episodes finished in
    tasks = [CaTTask.from_dict(r["task"]) for r in records if r["task"]]
    save_tasks(os.path.join(out, "tasks_proposed"), tasks)
    proposals = [Trajectory.from_dict(r["trajectory"]) for r in records if r["trajectory"]]
    save_trajectories(os.path.join(out, "challenger_trajectories"), proposals)
    reasons = Counter(r["reason"] for r in records)
    log.log(iteration, "propose", {"episodes": len(records), "parsed": len(tasks), "parse_reasons": dict(reasons)})
    log.table("samples/challenger", sample_rows(proposals, iteration, cfg.tracking.log_completions), iteration)
    run.mark(f"iter_{iteration}/propose")


def stage_check(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger) -> None:
    from tqdm import tqdm

    from .tasks.record import load_tasks

    out = run.iter_dir(iteration)
    proposals = Journal(os.path.join(out, "proposals.jsonl")).records()
    unique: dict[str, CaTTask] = {}
    for task in load_tasks(os.path.join(out, "tasks_proposed")):
        unique.setdefault(task.id, task)
    tasks = list(unique.values())
    journal = Journal(os.path.join(out, "checks.jsonl"))
    todo = [t for t in tasks if t.id not in journal]
    chunk = max(1, 4 * cfg.sandbox.num_workers)
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"iter {iteration} check", unit="task") as bar:
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            verdicts = asyncio.run(
                rt.sandbox.check_many(
                    [t.sandbox_payload() for t in batch],
                    cfg.sandbox.program_timeout_s,
                    cfg.challenger.min_failure_cases,
                )
            )
            for task, verdict in zip(batch, verdicts, strict=True):
                journal.append({"id": task.id, **verdict})
                bar.update(1)
    verdicts = {record["id"]: record for record in journal.records()}
    _stop_if_lost(f"iter_{iteration}/check", [verdicts[task.id] for task in tasks], "task checks", journal)
    checked = []
    for task in tasks:
        verdict = verdicts[task.id]
        task.check = {key: verdict.get(key) for key in ("kept", "reason", "stage", "detail", "timings")}
        checked.append(task)
    mode = cfg.challenger.filter
    passed = [t for t in checked if reaches_executor(t.check, mode)]
    kept, duplicates = deduplicate(passed, cfg.challenger.dedup_threshold)
    kept, capped = cap_per_instruction(kept, cfg.challenger.max_per_instruction)
    save_tasks(os.path.join(out, "tasks_checked"), checked)
    save_tasks(os.path.join(out, "tasks_kept"), kept)
    save_tasks_jsonl(os.path.join(out, "tasks_kept.jsonl"), kept)

    funnel = funnel_counts(t.check["reason"] for t in checked)
    parse_reasons = Counter(r["reason"] for r in proposals if r["reason"] != "parsed")
    dropped = {t.id for t in checked} - {t.id for t in passed}
    reasons = {**parse_reasons, **Counter(t.check["reason"] for t in checked if t.id in dropped)}
    if duplicates:
        reasons["duplicate"] = len(duplicates)
    if capped:
        reasons["instruction_cap"] = len(capped)
    values = {
        "funnel": {
            "proposed": len(proposals),
            "parsed": sum(1 for r in proposals if r["task"]),
            "unique": len(tasks),
            "verifier_runs": funnel["verifier_runs"],
            "solution_passes": funnel["solution_passes"],
            "failures_fail": funnel["failures_fail"],
            "kept": len(passed),
            "filter": mode,
            "decided_by": deciding_stage(mode),
            "deduplicated": len(kept) + len(capped),
            "to_executor": len(kept),
            "infra_error": funnel["infra_error"],
        },
        "reasons": reasons,
        "check_s_mean": _mean([(t.check.get("timings") or {}).get("total_s") for t in checked]),
    }
    log.log(iteration, "check", values)
    f = values["funnel"]
    print(
        f"[iter {iteration}] yield: proposed {f['proposed']} -> parsed {f['parsed']} -> verifier runs "
        f"{f['verifier_runs']} -> solution passes {f['solution_passes']} -> failures fail {f['failures_fail']} "
        f"-> kept by challenger.filter={mode} (decided at {f['decided_by']}) {f['kept']} "
        f"-> kept after dedup {f['deduplicated']}" + (f" -> after the instruction cap {len(kept)}" if capped else "")
    )
    if not kept:
        logger.warning(nothing_kept_hint(iteration, f["proposed"], f["parsed"], reasons))
    run.mark(f"iter_{iteration}/check")


def _kept_tasks(run: RunDir, iteration: int) -> list[CaTTask]:
    from .tasks.record import load_tasks

    return load_tasks(os.path.join(run.iter_dir(iteration), "tasks_kept"))


def make_user_factory(cfg: RunConfig, rt, policy):
    """Simulated users for retail/airline, `make_user(episode_id)`: played by `policy` (executor.user_model=policy)
    or by a frozen copy of the base model that never receives weight updates (executor.user_model=frozen)."""
    from .agents.user import LLMUser

    sampling = _sampling(cfg.executor.sampling)
    user_policy = rt.user_policy() if cfg.executor.user_model == "frozen" else policy

    def make_user(episode_id: str):
        users_policy = episode_policy(user_policy, cfg.engine, f"{episode_id}/user")
        return LLMUser(users_policy, rt.chat, sampling, max_context_tokens=cfg.engine.max_model_len)

    return make_user


def stage_solve(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger) -> None:
    out = run.iter_dir(iteration)
    tasks = _kept_tasks(run, iteration)
    journal = Journal(os.path.join(out, "rollouts.jsonl"))
    policy, chat, sandbox = rt.policy(generation=True), rt.chat, rt.sandbox
    make_user = make_user_factory(cfg, rt, policy)
    settings = executor_settings(cfg, cfg.executor.sampling, iteration)
    openings = {
        task.id: executor_opening(
            task.env, make_env(task.env, task.env_config), task.instruction, cfg.executor.action_format
        )
        for task in tasks
    }

    def episode_jobs(task_samples: list[tuple[CaTTask, range]]) -> list:
        jobs = []
        for task, samples in task_samples:
            for sample in samples:
                key = f"it{iteration}/{task.id}/{sample}"  # the journal key is the trajectory id

                async def job(task=task, sample=sample, key=key) -> dict:
                    user = make_user(key) if is_dialogue(task.env) else None
                    trajectory = await run_executor_episode(
                        task,
                        episode_policy(policy, cfg.engine, key),
                        sandbox,
                        chat,
                        openings[task.id],
                        settings,
                        user=user,
                        sample_index=sample,
                        episode_id=key,
                    )
                    return trajectory.to_dict()

                jobs.append((key, job))
        return jobs

    def on_error(key: str, exc: BaseException) -> dict | None:
        logger.warning("executor episode %s lost to an infrastructure error: %s", key, describe_loss(exc))
        return {"id": key, "reason": "infra_error", "error": str(exc)}

    k = cfg.executor.samples_per_task
    begin = time.monotonic()
    jobs = episode_jobs([(task, range(k)) for task in tasks])
    records = asyncio.run(run_journaled(jobs, journal, cfg.executor.concurrency, f"iter {iteration} solve", on_error))
    _stop_if_lost(f"iter_{iteration}/solve", records, "executor episodes", journal)
    solved = {r["task_id"] for r in records if r.get("reward", 0) >= 1.0}
    extra, more = cfg.executor.resample_unsolved, []
    if extra:
        # A 0/1-reward learner has nothing to learn from a task none of its k samples solved: give those tasks
        # `extra` more samples, so that a skill solved ~1% of the time is found at all. Decided by the first
        # round's journaled records alone (complete here), so a resumed run resamples the same tasks.
        more = episode_jobs([(task, range(k, k + extra)) for task in tasks if task.id not in solved])
        desc = f"iter {iteration} resample unsolved"
        records += asyncio.run(run_journaled(more, journal, cfg.executor.concurrency, desc, on_error))
        _stop_if_lost(f"iter_{iteration}/solve", records, "executor episodes", journal)
    elapsed = time.monotonic() - begin
    trajectories = [Trajectory.from_dict(r) for r in records if r["reason"] not in INFRA_REASONS]
    save_trajectories(os.path.join(out, "trajectories"), trajectories)
    rewards = [t.reward for t in trajectories]
    by_task = successes_by_task(trajectories)
    sampled = sum(t.num_sampled_tokens for t in trajectories)
    solved_tasks = sum(any(v) for v in by_task.values())
    log.log(
        iteration,
        "rollout",
        {
            "episodes": len(records),
            "trained_on": len(trajectories),
            "mean_reward": _mean(rewards),
            "solved_tasks": solved_tasks,
            "tasks": len(by_task),
            "end_reasons": dict(Counter(r["reason"] for r in records)),
            "sampled_tokens": sampled,
            "resampled_episodes": len(more),
            "solved_by_resampling": solved_tasks - len(solved),
            "tokens_per_s": round(sampled / elapsed, 1)
            if elapsed > 1 and len(journal) == len(jobs) + len(more)
            else None,
        },
    )
    log.table("samples/executor", sample_rows(trajectories, iteration, cfg.tracking.log_completions), iteration)
    run.mark(f"iter_{iteration}/solve")


def stage_train(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger, sync: bool = True) -> str:
    """Train on the iteration's trajectories, checkpoint, export; then (sync) push the weights to the engines.
    sync=False (pipeline.async_rollouts): the engines are generating the next iteration meanwhile; the caller
    syncs, with `finish_train_sync`, once they are done. Returns the HF export's folder."""
    import ray

    from .learner.replay import replay_for
    from .rollout.trajectory import load_trajectories

    out = run.iter_dir(iteration)
    trajectories = load_trajectories(os.path.join(out, "trajectories"))
    if cfg.challenger.reward != "none":  # the learner's metrics report their mean as reward/challenger
        kept = _kept_tasks(run, iteration)
        proposals = load_trajectories(os.path.join(out, "challenger_trajectories"))
        trajectories = trajectories + score_challenger(proposals, kept, trajectories, cfg.challenger.reward)
    # how many weight versions the learner is ahead of each trajectory's sampler (async_rollouts: 0 or 1; in
    # distill mode the teacher, never synced, samples them)
    staleness = (
        {} if cfg.mode == "distill" else Counter(str(rt.weight_version - t.weight_version) for t in trajectories)
    )
    learner = cfg.learner
    replayed = replay_for(trajectories, learner.replay_from, learner.replay_fraction, cfg.seed, iteration)
    trajectories = trajectories + replayed
    begin = time.monotonic()
    ckpt_dir = os.path.join(run.path, "checkpoints", f"iter_{iteration:03d}")
    try:
        metrics = rt.learner.train([t.to_dict() for t in trajectories]) if trajectories else {"skipped": "no data"}
        train_s = time.monotonic() - begin
        checkpoint = rt.learner.save_checkpoint(os.path.join(ckpt_dir, "deepspeed"))
        hf = rt.learner.export_hf(os.path.join(ckpt_dir, "hf"))
    except ray.exceptions.RayActorError as exc:
        raise StageIncomplete(
            f"iter_{iteration}/train: a learner actor died ({describe_loss(exc)}); "
            "the stage is not marked done: rerun the same command to train this iteration again from the last "
            "recorded checkpoint (the trajectories are kept)"
        ) from exc
    if sync:
        synced = _push_weights(rt, hf, iteration)
    else:
        synced = {"deferred": "pipeline.async_rollouts: after the generation this training overlaps (stage sync)"}
    values = {**metrics, "train_s": round(train_s, 2), "staleness": dict(staleness), "sync": synced}
    if cfg.learner.replay_fraction > 0:
        values["replayed"] = len(replayed)
    log.log(iteration, "train", values)
    models = {**run.state.get("models", {}), str(iteration): {"hf": hf, "checkpoint": checkpoint}}
    run.mark(f"iter_{iteration}/train", models=models)
    if sync:
        prune_checkpoints(os.path.join(run.path, "checkpoints"), cfg.checkpoint.keep_last)
    return hf


def finish_train_sync(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger, hf: str) -> None:
    """The deferred half of stage_train(sync=False), once the engines are idle: the new weights into them, then
    the older checkpoints go (not before: an engine started meanwhile loaded the previous export)."""
    log.log(iteration, "sync", _push_weights(rt, hf, iteration))
    prune_checkpoints(os.path.join(run.path, "checkpoints"), cfg.checkpoint.keep_last)


def _push_weights(rt, hf: str, iteration: int) -> dict:
    """Iteration `iteration`'s weights (exported at `hf`) into the running engines, as version iteration + 1."""
    rt.model_path = hf  # engines started later (e.g. the student's, in distill mode) load the new weights
    return rt.sync_weights(iteration + 1)


def prune_checkpoints(folder: str, keep_last: int) -> list[str]:
    """Delete `iter_<i>` folders but the newest `keep_last` (0 keeps all). Runs only after the newest is recorded
    in the run state, so a crash here loses nothing a resume needs (it starts from the newest)."""
    if keep_last <= 0 or not os.path.isdir(folder):
        return []
    iterations = sorted((n for n in os.listdir(folder) if re.fullmatch(r"iter_\d+", n)), key=lambda n: int(n[5:]))
    removed = iterations[:-keep_last]
    for name in removed:
        shutil.rmtree(os.path.join(folder, name))
    return removed


def stage_eval(
    cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger, items: list, label: str | None = None
) -> dict:
    from .eval.harness import evaluate_items

    label = label or ("before" if iteration < 0 else f"iter_{iteration:03d}")
    journal = Journal(os.path.join(run.path, "eval", f"{label}.jsonl"))
    policy = rt.policy()
    settings = executor_settings(cfg, cfg.eval.sampling, iteration)
    results = asyncio.run(
        evaluate_items(
            items,
            policy,
            rt.sandbox,
            rt.chat,
            settings,
            cfg.eval.num_samples,
            cfg.executor.concurrency,
            journal,
            make_user=make_user_factory(cfg, rt, policy),
            desc=f"eval {label}",
            engine_cfg=cfg.engine,
        )
    )
    _stop_if_lost(f"eval_{label}", journal.records(), "evaluation episodes", journal)
    log.log(iteration, "eval", {"label": label, "results": results})
    summary = ", ".join(f"{name} pass@1 {r.get('pass@1', 0):.3f}" for name, r in results.items())
    print(f"[eval {label}] {summary}")
    run.mark(f"eval_{label}")
    return results


# ------------------------------------------------------------------------------------------------- drivers
def run_pipeline(cfg: RunConfig, stages=("propose", "check", "solve", "train", "eval")) -> str:
    """Run (or resume) the loop; returns the report path."""
    import datasets

    from . import logs
    from .report import format_table, summary_rows, write_report

    datasets.disable_progress_bars()
    run = RunDir(cfg)
    with logs.scope(os.path.join(run.path, "logs")):  # quiet: vLLM/Ray/DeepSpeed logs to <run_dir>/logs/
        log = MetricsLogger(run.path, cfg.tracking, config_mod.to_dict(cfg))
        try:
            _run_stages(cfg, run, log, stages)
        finally:
            log.close()
        report = write_report(run.path)
        print(format_table(summary_rows(run.path)))
        print(f"report: {report}")
        return report


GENERATION_STAGES = (("propose", stage_propose), ("check", stage_check), ("solve", stage_solve))


def _run_stages(cfg: RunConfig, run: RunDir, log: MetricsLogger, stages) -> None:
    from .runtime import Runtime

    eval_items = eval_items_of(cfg) if "eval" in stages else []
    if cfg.learner.replay_fraction > 0 and "train" in stages:
        from .learner.replay import replay_source

        replay_source(cfg.learner.replay_from)  # a missing or empty folder stops the run before any work
    if "eval" in stages and not eval_items:
        logger.warning("no evaluation tasks configured (eval.heldout_tasks / m3tooleval_tasks / taubench_tasks)")
    hf, checkpoint = run.latest_model
    if run.state["done"]:
        print(f"resuming {run.path}: finished stages {', '.join(run.state['done'])}")
    with Runtime(cfg, latest_model=hf, latest_checkpoint=checkpoint) as rt:
        rt.weight_version = len(run.state.get("models", {}))
        if eval_items and not run.done("eval_before"):
            _timed(log, -1, "eval", stage_eval, cfg, run, rt, -1, log, eval_items)
        for iteration in range(cfg.iterations):
            _generate(cfg, run, rt, iteration, log, stages)  # nothing left to do when it overlapped the last training
            ahead = iteration + 1 if cfg.pipeline.async_rollouts and iteration + 1 < cfg.iterations else None
            if "train" in stages and not run.done(f"iter_{iteration}/train"):
                if ahead is None:
                    _timed(log, iteration, "train", stage_train, cfg, run, rt, iteration, log)
                else:
                    _train_while_generating(cfg, run, rt, iteration, log, stages, ahead)
            due = cfg.eval.every and (iteration + 1) % cfg.eval.every == 0
            if eval_items and (due or iteration == cfg.iterations - 1) and not run.done(f"eval_iter_{iteration:03d}"):
                _timed(log, iteration, "eval", stage_eval, cfg, run, rt, iteration, log, eval_items)


def _generate(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger, stages) -> None:
    for name, fn in GENERATION_STAGES:
        if name in stages and not run.done(f"iter_{iteration}/{name}"):
            _timed(log, iteration, name, fn, cfg, run, rt, iteration, log)


def _train_while_generating(cfg: RunConfig, run: RunDir, rt, iteration: int, log: MetricsLogger, stages, ahead):
    """pipeline.async_rollouts: train on `iteration` in a thread while this one generates iteration `ahead` with
    the weights the engines hold; the new weights reach them only after both, so no rollout is more than one
    version behind the learner that trains on it. Either side's failure is raised once the training has ended
    (its checkpoint is then recorded, or it is not marked done), so a rerun resumes both from their journals."""
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["hf"] = _timed(log, iteration, "train", stage_train, cfg, run, rt, iteration, log, sync=False)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc

    trainer = threading.Thread(target=train, name=f"train-iter-{iteration}", daemon=True)
    trainer.start()
    try:
        _generate(cfg, run, rt, ahead, log, stages)
    except KeyboardInterrupt:
        raise  # not waited for: the training dies with the learner when the runtime closes, and is not marked done
    except BaseException:
        trainer.join()
        raise
    trainer.join()
    if "error" in outcome:
        raise outcome["error"]
    _timed(log, iteration, "sync", finish_train_sync, cfg, run, rt, iteration, log, outcome["hf"])


def _timed(log: MetricsLogger, iteration: int, name: str, fn, *args, **kwargs):
    """Run one stage and record when it ran (metrics.jsonl stage "timing": what bench/pipeline_overlap.py
    measures the overlap and the time outside generation and training with)."""
    began = time.time()
    result = fn(*args, **kwargs)
    log.log(iteration, "timing", {"began": {name: round(began, 3)}, "seconds": {name: round(time.time() - began, 3)}})
    return result


def run_evaluation_only(cfg: RunConfig, model_path: str | None = None) -> dict:
    from . import logs
    from .runtime import Runtime

    run = RunDir(cfg)
    items = eval_items_of(cfg)
    if not items:
        raise ConfigError("nothing to evaluate: set eval.heldout_tasks, eval.m3tooleval_tasks or eval.taubench_tasks")
    hf, _ = run.latest_model
    model = model_path or hf
    label = "standalone-" + hashlib.sha256(str(model or cfg.model.path).encode()).hexdigest()[:8]
    with logs.scope(os.path.join(run.path, "logs")), Runtime(cfg, latest_model=model) as rt:
        log = MetricsLogger(run.path, cfg.tracking, config_mod.to_dict(cfg))
        try:
            results = stage_eval(cfg, run, rt, -1, log, items, label=label)
        finally:
            log.close()
    print(json.dumps(results, indent=1))
    return results


def executor_settings(cfg: RunConfig, sampling, iteration: int) -> ExecutorSettings:
    return ExecutorSettings(
        max_turns=cfg.executor.max_turns,
        max_episode_tokens=cfg.executor.max_episode_tokens,
        action_format=cfg.executor.action_format,
        sampling=_sampling(sampling),
        answer_in_code=cfg.executor.answer_in_code,
    )


def _writer(cfg: RunConfig, rt) -> str:
    """The model whose engines write the tasks: the teacher in distill mode, else the current policy."""
    return cfg.model.teacher_path if cfg.mode == "distill" else rt.model_path


def _sampling(sampling) -> dict:
    """vLLM sampling parameters of a role (the engines' seed is engine.seed)."""
    return {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None
