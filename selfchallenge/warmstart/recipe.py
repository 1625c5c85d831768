"""The warm-start recipe: a tiny model made partly competent as challenger and executor by SFT on scripted
transcripts, plus a held-out task set to measure it on.

    selfchallenge model warmstart [RUN_CONFIG] [key=value ...] [warmstart.<knob>=value ...] --out-dir DIR

The run config supplies what must match the run the model is warm-started for: its environments (`envs`: the
calculation domains, and the worlds of web_browsing, retail and airline; `warmstart.envs` picks some of them),
`challenger.explore_turns` (it is written in the challenger prompt), `engine.max_model_len` and
`executor.max_episode_tokens` (the transcripts must fit), and `sandbox`. `warmstart.*` keys set the knobs of
`WarmstartConfig`. Steps: generate tasks per environment (calculation: generators.py; the others: scripted.py
with families_web.py and families_tau.py) -> build the tiny model (tokenizer trained on the project's prompts,
this run's prompts and the generated texts) -> scripted transcripts through the real episode loops and Docker
sandbox (challenger, executor, and in retail/airline the simulated user's side) -> SFT with the project's
LearnerGroup (DeepSpeed on CPU) -> HF export to DIR (+ DIR/warmstart.json, DIR/heldout.jsonl: held-out tasks per environment).
Deterministic by seed; a finished DIR with the same recipe hash is reused as is.

The defaults deliberately stop short of mastery (10 epochs over 132 transcripts, few of them the executor's): the
warm-started model should solve some held-out tasks, not all, so that the self-challenging loop has room to
improve it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .. import logs
from ..config import ConfigError, LearnerConfig, RunConfig, SandboxConfig
from ..tasks.record import CaTTask, instance_key, save_tasks_jsonl
from .families import FAMILY_NAMES
from .families_tau import AIRLINE_FAMILIES, RETAIL_FAMILIES
from .families_web import FAMILIES as WEB_FAMILIES
from .generators import GENERATOR_DOMAINS, TRADE, GeneratedTask, generate_tasks
from .scripted import generate_scripted_tasks
from .transcripts import TranscriptBudget, challenger_transcripts, executor_transcripts, user_transcripts

WORLD_FAMILIES = {"web_browsing": WEB_FAMILIES, "retail": RETAIL_FAMILIES, "airline": AIRLINE_FAMILIES}

RECIPE_VERSION = 3  # 3: several wordings per trade question; executor_families
HELDOUT_SEED_OFFSET = 10_000
SEED_TASKS_SEED_OFFSET = 20_000
EXECUTOR_SEED_OFFSET = 1
MARKER = "warmstart.json"


@dataclass
class WarmstartConfig:
    seed: int = 0
    # environments to warm-start (names); empty = every environment of the run config (their worlds: env_config)
    envs: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)  # calculation only; empty = the run config's domains
    # the tiny model (head_dim = hidden_size / heads must be one vLLM's CPU attention supports, e.g. 64)
    hidden_size: int = 256
    layers: int = 2
    heads: int = 4
    vocab_size: int = 2048
    # transcripts per environment: many challenger ones (writing a whole task is the long skill), few executor
    # ones, so the executor starts partly competent and the loop has room to improve it. Retail/airline dialogues
    # also give one simulated-user transcript each.
    challenger_transcripts: int = 120
    flawed_rate: float = 0.2  # fraction of challenger transcripts that write a flawed task
    failure_cases: int = 2  # per generated task (2-3): fewer keeps the challenger's task turn short
    executor_transcripts: int = 12
    # families the executor transcripts are drawn from (calculation: names of families.FAMILY_NAMES; worlds: the
    # family functions' names); an environment none of whose families is named keeps all; empty = every family.
    # The challenger transcripts always cover every family, so the challenger can write (and the filter
    # check) tasks of families the executor never saw: the held-out tasks of those are the "transfer" split.
    executor_families: list[str] = field(default_factory=list)
    # SFT (learner.algorithm = sft). 10 epochs, not 6: after 6 the sampled challenger garbles most tasks (seed 2
    # kept 1-4 of 48 proposals, nearly all one question) and training on the few it keeps pulls the other
    # questions down; after 10 it keeps ~25 of 48 over 5-6 question types (docs/demo.md)
    epochs: int = 10
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 10
    mini_batch_size: int = 4
    micro_batch_tokens: int = 8192
    grad_clip: float = 1.0
    num_cpus: int = 2  # CPUs (torch threads) of the learner
    concurrency: int = 8  # scripted episodes in flight
    heldout_tasks: int = 40  # per environment, written to <out_dir>/heldout.jsonl (0 = none)
    # good generated tasks per environment written to <out_dir>/seed_tasks.jsonl (none of them trained on), for
    # challenger.seed_tasks: work for every stage of a run whose tiny challenger writes few tasks that parse
    seed_tasks: int = 0


@dataclass
class RunSettings:
    """What the warm start takes from the run config."""

    domains: list[str]  # calculation generator domains (empty: calculation is not warm-started)
    worlds: list[tuple[str, dict]]  # (environment, env_config) of each other environment warm-started
    explore_turns: int
    budget: TranscriptBudget
    sandbox: SandboxConfig


def run_settings(run_cfg: RunConfig | None, options: WarmstartConfig) -> RunSettings:
    run_cfg = run_cfg or RunConfig()
    wanted = list(options.envs) or [spec.name for spec in run_cfg.envs]
    unknown = [name for name in wanted if name != "calculation" and name not in WORLD_FAMILIES]
    if unknown:
        raise ConfigError(f"warmstart.envs has {unknown}; choose from {['calculation', *WORLD_FAMILIES]}")
    domains = list(options.domains)
    worlds: list[tuple[str, dict]] = []
    for name in dict.fromkeys(wanted):
        specs = [(i, spec) for i, spec in enumerate(run_cfg.envs) if spec.name == name]
        if name != "calculation":
            worlds += [(name, dict(spec.env_config)) for _, spec in specs] or [(name, {})]
            continue
        if options.domains:
            continue
        for i, spec in specs:
            domain = spec.env_config.get("domain") or "all"
            if domain not in GENERATOR_DOMAINS:
                raise ConfigError(
                    f"envs[{i}] is calculation with domain {domain!r}, which the warm start has no task generators "
                    f"for; set its env_config.domain to one of {list(GENERATOR_DOMAINS)} or warmstart.domains"
                )
            domains.append(domain)
        domains = domains or [TRADE]
    unknown = [d for d in domains if d not in GENERATOR_DOMAINS]
    if unknown:
        raise ConfigError(f"warmstart.domains has {unknown}; choose from {list(GENERATOR_DOMAINS)}")
    known = calculation_family_names(domains) + [family for name, _ in worlds for family in world_family_names(name)]
    unknown = [name for name in options.executor_families if name not in known]
    if unknown:
        raise ConfigError(
            f"warmstart.executor_families has {unknown}, which are not task families of the warm-started "
            f"environments (calculation domains {domains}, worlds {[name for name, _ in worlds]}); choose from "
            f"{list(dict.fromkeys(known))} (or leave it empty for every family)"
        )
    budget = TranscriptBudget(
        explore_turns=run_cfg.challenger.explore_turns,
        challenger_max_tokens=run_cfg.engine.max_model_len,
        challenger_task_tokens=run_cfg.challenger.max_tokens,
        executor_max_tokens=run_cfg.executor.max_episode_tokens,
        executor_max_turns=run_cfg.executor.max_turns,
    )
    return RunSettings(
        sorted(set(domains), key=domains.index),
        worlds,
        run_cfg.challenger.explore_turns,
        budget,
        run_cfg.sandbox,
    )


def recipe_hash(options: WarmstartConfig, settings: RunSettings) -> str:
    recipe = {
        "version": RECIPE_VERSION,
        "options": dataclasses.asdict(options),
        "domains": settings.domains,
        "worlds": settings.worlds,
        "budget": dataclasses.asdict(settings.budget),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def calculation_family_names(domains: list[str] | tuple[str, ...]) -> list[str]:
    return [name for domain in domains for name in FAMILY_NAMES[domain]]


def world_family_names(world: str) -> list[str]:
    return [family.__name__ for family in WORLD_FAMILIES[world]]  # each family's Script.family is its function's


def shown_families(env_families: list[str], executor_families: list[str]) -> list[str]:
    """The families of one environment that the executor's transcripts are drawn from: those of `env_families`
    that `executor_families` names, or all of them when it names none (it may name another environment's)."""
    return [name for name in env_families if name in executor_families] or list(env_families)


def training_tasks(options: WarmstartConfig, settings: RunSettings) -> tuple[list[GeneratedTask], list[GeneratedTask]]:
    """(challenger tasks incl. flawed ones, executor tasks): the seed streams the recipe trains on, per environment
    (`challenger_transcripts` and `executor_transcripts` each)."""
    challenger, executor = [], []
    if settings.domains:
        challenger += generate_tasks(
            options.challenger_transcripts, options.seed, settings.domains, options.flawed_rate, options.failure_cases
        )
        calculation = calculation_family_names(settings.domains)
        shown = shown_families(calculation, options.executor_families)
        executor += generate_tasks(
            options.executor_transcripts, options.seed + EXECUTOR_SEED_OFFSET, settings.domains, 0.0,
            options.failure_cases, None if shown == calculation else shown,
        )  # fmt: skip
    for name, env_config in settings.worlds:
        families = WORLD_FAMILIES[name]
        shown = shown_families(world_family_names(name), options.executor_families)
        challenger += generate_scripted_tasks(
            name, env_config, families, options.challenger_transcripts, options.seed, options.flawed_rate,
            options.failure_cases, id_prefix="warmstart-challenger",
        )  # fmt: skip
        executor += generate_scripted_tasks(
            name, env_config, [family for family in families if family.__name__ in shown],
            options.executor_transcripts, options.seed + EXECUTOR_SEED_OFFSET, 0.0, options.failure_cases,
            id_prefix="warmstart-executor",
        )  # fmt: skip
    return challenger, executor


def build_seed_tasks(path: str, n: int, options: WarmstartConfig, settings: RunSettings, exclude=()) -> list[CaTTask]:
    """Write `n` good tasks per environment (seed stream seed + 20_000, none of them a training task) to `path`."""
    excluded = set(exclude)
    stream = dataclasses.replace(
        options, seed=options.seed + SEED_TASKS_SEED_OFFSET, challenger_transcripts=3 * n + 10,
        executor_transcripts=0, flawed_rate=0.0,
    )  # fmt: skip
    pool, _ = training_tasks(stream, settings)
    chosen: list[CaTTask] = []
    for name in dict.fromkeys(item.task.env for item in pool):
        fresh = [g.task for g in pool if g.task.env == name and task_key(g.task) not in excluded]
        if len(fresh) < n:
            raise ValueError(f"only {len(fresh)} {name} seed tasks differ from the training set; ask for fewer")
        chosen += fresh[:n]
    save_tasks_jsonl(path, chosen)
    return chosen


def task_key(task: CaTTask) -> str:
    """What makes two generated tasks the same task: the question and its given values."""
    return instance_key(task.instruction, task.env_config.get("inputs"))


def build_heldout(
    path: str,
    n: int,
    seed: int,
    domains: list[str] | tuple[str, ...] = (TRADE,),
    exclude=(),
    executor_families: list[str] | tuple[str, ...] = (),
    worlds: list[tuple[str, dict]] | tuple = (),
) -> list[CaTTask]:
    """Write `n` good generated tasks per environment (the calculation `domains` together, then each of `worlds`;
    seed stream seed + 10_000) to the JSONL `path`; none of their (instruction, inputs) pairs is in `exclude` (the
    training tasks, as `task_key`s). Each task's `provenance["split"]` says what it measures: "transfer" when its
    family is not one its environment's executor transcripts showed (`shown_families`), "retention" otherwise (a
    family it was shown, a new instance). Returns the tasks."""
    excluded, stream = set(exclude), seed + HELDOUT_SEED_OFFSET
    pools = []
    if n and domains:
        pool = generate_tasks(3 * n + len(excluded), stream, domains, 0.0)
        pools.append(("calculation", pool, calculation_family_names(domains)))
    for name, env_config in worlds if n else ():
        pool = generate_scripted_tasks(name, env_config, WORLD_FAMILIES[name], 3 * n, stream, id_prefix="heldout")
        pools.append((name, pool, world_family_names(name)))
    chosen: list[CaTTask] = []
    for name, pool, families in pools:
        fresh = [g.task for g in pool if task_key(g.task) not in excluded][:n]
        if len(fresh) < n:
            raise ValueError(f"only {len(fresh)} held-out {name} tasks differ from the training set; ask for fewer")
        shown = shown_families(families, list(executor_families))
        for task in fresh:
            split = "retention" if task.provenance.get("generator") in shown else "transfer"
            task.provenance = {**task.provenance, "heldout": True, "seed": stream, "split": split}
        chosen += fresh
    assert not {task_key(t) for t in chosen} & excluded, "held-out tasks overlap the training set"
    save_tasks_jsonl(path, chosen)
    return chosen


def tokenizer_corpus(tasks: list[GeneratedTask], settings: RunSettings) -> list[str]:
    """default_corpus + the project's prompts + this run's prompts (challenger, executor, simulated user) + the
    generated task texts and scripts."""
    from ..agents.prompts import challenger_system_prompt, executor_opening, user_system_prompt
    from ..envs import make_env
    from ..rollout.tiny_model import default_corpus
    from ..runtime import prompt_corpus
    from ..tasks.parser import format_task
    from .transcripts import executor_turns, user_lines

    texts = default_corpus() + prompt_corpus()
    targets = [("calculation", {"domain": domain}) for domain in settings.domains] + list(settings.worlds)
    for name, env_config in targets:
        env = make_env(name, env_config)
        texts.append(challenger_system_prompt(name, env, settings.explore_turns, inputs=True))
        texts.append(executor_opening(name, env, "", "code")[0]["content"])
    for item in tasks:
        texts.append(f"{format_task(item.task)}\n{item.explore_code}\n" + "\n".join(item.explore_actions))
        texts.extend(executor_turns(item) + user_lines(item))
        if item.executor_script and item.task.env in ("retail", "airline"):
            texts.append(user_system_prompt(item.task.instruction))
    return texts


def _finished(out_dir: str, digest: str) -> bool:
    marker = os.path.join(out_dir, MARKER)
    if not (os.path.exists(marker) and os.path.exists(os.path.join(out_dir, "config.json"))):
        return False
    with open(marker, encoding="utf-8") as handle:
        return json.load(handle).get("recipe_hash") == digest


def _prepare_out_dir(out_dir: str) -> None:
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, MARKER)):
        raise ConfigError(
            f"--out-dir {out_dir} is not empty and holds no warm-start model ({MARKER}); "
            "choose an empty or new folder so nothing is overwritten"
        )
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)


def make_transcripts(options: WarmstartConfig, settings: RunSettings, model_dir: str, challenger_tasks, executor_tasks):
    """Scripted transcripts through the real episode loops and a Docker (or configured) sandbox pool."""
    from transformers import AutoTokenizer

    from ..rollout.chat import ChatTokens
    from ..rollout.sandbox_client import LocalSandbox
    from ..sandbox.pool import SandboxPool

    chat = ChatTokens(AutoTokenizer.from_pretrained(model_dir))
    sandbox_cfg = dataclasses.replace(settings.sandbox, max_sessions=max(settings.sandbox.max_sessions, 8))
    data_dirs = [env_config["data_dir"] for _, env_config in settings.worlds if env_config.get("data_dir")]
    with SandboxPool(sandbox_cfg, data_dirs=data_dirs) as pool:
        sandbox = LocalSandbox(pool)
        challenger, parse_reasons = asyncio.run(
            challenger_transcripts(challenger_tasks, chat, sandbox, settings.budget, options.concurrency)
        )
        executor, outcomes = asyncio.run(
            executor_transcripts(executor_tasks, chat, sandbox, settings.budget, options.concurrency)
        )
    solved = {trajectory.task_id for trajectory in executor}
    users = user_transcripts([item for item in executor_tasks if item.task.id in solved], chat)
    counts = {"challenger_parse": dict(parse_reasons), "executor_outcomes": dict(outcomes)}
    return challenger, executor, users, counts


def sft(options: WarmstartConfig, model_dir: str, trajectories: list, out_dir: str) -> dict:
    """SFT with the project's LearnerGroup (one DeepSpeed rank); exports the HF model to out_dir."""
    import ray

    from ..learner.actor import LearnerGroup

    started_ray = not ray.is_initialized()
    if started_ray:
        logs.tame()
        # a quiet warm start's learner writes to <out_dir>/logs/; --verbose forwards its output to the terminal
        ray.init(num_cpus=max(options.num_cpus, 1), include_dashboard=False, log_to_driver=logs.verbose())
        logs.tame()
    cfg = LearnerConfig(
        algorithm="sft",
        lr=options.lr,
        lr_schedule=options.lr_schedule,
        warmup_steps=options.warmup_steps,
        grad_clip=options.grad_clip,
        epochs=1,  # one train() call per epoch, so progress prints between epochs
        mini_batch_size=options.mini_batch_size,
        micro_batch_tokens=options.micro_batch_tokens,
        seed=options.seed,
    )
    steps_per_epoch = max(1, -(-len(trajectories) // options.mini_batch_size)) if options.mini_batch_size else 1
    learner = LearnerGroup(
        cfg,
        model_dir,
        dtype="float32",
        total_steps=options.epochs * steps_per_epoch,
        num_cpus_per_learner=options.num_cpus,
        num_gpus_per_learner=0.0,
        env_vars={"OMP_NUM_THREADS": str(options.num_cpus)},
    )
    history = []
    try:
        for epoch in range(options.epochs):
            begin = time.monotonic()
            metrics = learner.train([t.to_dict() for t in trajectories])
            history.append(
                {
                    "epoch": epoch + 1,
                    "first_loss": round(metrics["first_loss"], 4),
                    "last_loss": round(metrics["last_loss"], 4),
                    "steps": int(metrics["optimizer_steps"]),
                    "seconds": round(time.monotonic() - begin, 1),
                }
            )
            print(f"[warmstart] epoch {epoch + 1}/{options.epochs}: {history[-1]}", flush=True)
        learner.export_hf(out_dir)
    finally:
        learner.shutdown()
        if started_ray:
            ray.shutdown()
    return {"epochs": history}


def warmstart(options: WarmstartConfig, out_dir: str, run_cfg: RunConfig | None = None) -> str:
    """Build, script, fine-tune and export the warm-started model to `out_dir`; returns `out_dir`."""
    out_dir = os.path.abspath(out_dir)
    settings = run_settings(run_cfg, options)
    digest = recipe_hash(options, settings)
    if _finished(out_dir, digest):
        print(f"[warmstart] {out_dir} already holds this recipe ({digest}); reusing it", flush=True)
        return out_dir
    _prepare_out_dir(out_dir)
    with logs.scope(os.path.join(out_dir, "logs")):  # quiet: the learner's and Ray's logs to <out_dir>/logs/
        return _build(options, out_dir, settings, digest)


def _build(options: WarmstartConfig, out_dir: str, settings: RunSettings, digest: str) -> str:
    from ..rollout.tiny_model import build_tiny_model
    from ..rollout.trajectory import save_trajectories

    timings: dict[str, float] = {}
    begin = time.monotonic()
    challenger_tasks, executor_tasks = training_tasks(options, settings)
    where = [*settings.domains, *(name for name, _ in settings.worlds)]
    print(
        f"[warmstart] {len(challenger_tasks)} challenger tasks ({sum(t.flaw is not None for t in challenger_tasks)} "
        f"flawed) and {len(executor_tasks)} executor tasks over {where}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="warmstart-base-", dir=os.path.dirname(out_dir)) as base:
        corpus = tokenizer_corpus(challenger_tasks + executor_tasks, settings)
        build_tiny_model(
            base,
            hidden_size=options.hidden_size,
            layers=options.layers,
            heads=options.heads,
            vocab_size=options.vocab_size,
            seed=options.seed,
            corpus=corpus,
            max_position_embeddings=max(4096, settings.budget.challenger_max_tokens),
        )
        timings["build_s"] = round(time.monotonic() - begin, 1)
        mark = time.monotonic()
        challenger, executor, users, counts = make_transcripts(
            options, settings, base, challenger_tasks, executor_tasks
        )
        timings["transcripts_s"] = round(time.monotonic() - mark, 1)
        tokens = sum(len(t.prompt_ids) + len(t.response_ids) for t in challenger + executor + users)
        print(
            f"[warmstart] transcripts: {len(challenger)} challenger {counts['challenger_parse']}, {len(executor)} "
            f"executor kept {counts['executor_outcomes']}, {len(users)} simulated user; {tokens} tokens per epoch "
            f"({timings['transcripts_s']} s)",
            flush=True,
        )
        mark = time.monotonic()
        training = sft(options, base, challenger + executor + users, out_dir)
        timings["sft_s"] = round(time.monotonic() - mark, 1)
    data_dir = os.path.join(out_dir, "warmstart_data")
    save_trajectories(os.path.join(data_dir, "challenger_trajectories"), challenger)
    save_trajectories(os.path.join(data_dir, "executor_trajectories"), executor)
    if users:
        save_trajectories(os.path.join(data_dir, "user_trajectories"), users)
    save_tasks_jsonl(os.path.join(data_dir, "challenger_tasks.jsonl"), [t.task for t in challenger_tasks])
    save_tasks_jsonl(os.path.join(data_dir, "executor_tasks.jsonl"), [t.task for t in executor_tasks])
    if options.seed_tasks:
        exclude = [task_key(t.task) for t in challenger_tasks + executor_tasks]
        build_seed_tasks(os.path.join(out_dir, "seed_tasks.jsonl"), options.seed_tasks, options, settings, exclude)
    if options.heldout_tasks:
        exclude = [task_key(t.task) for t in challenger_tasks + executor_tasks]
        build_heldout(
            os.path.join(out_dir, "heldout.jsonl"), options.heldout_tasks, options.seed, settings.domains, exclude,
            options.executor_families, settings.worlds,
        )  # fmt: skip
    timings["total_s"] = round(time.monotonic() - begin, 1)
    marker = {
        "recipe_hash": digest,
        "recipe_version": RECIPE_VERSION,
        "options": dataclasses.asdict(options),
        "domains": settings.domains,
        "worlds": settings.worlds,
        "budget": dataclasses.asdict(settings.budget),
        "transcripts": {
            "challenger": len(challenger),
            "executor": len(executor),
            "user": len(users),
            "tokens_per_epoch": tokens,
            **counts,
        },
        "training": training,
        "timings": timings,
        "load_average": os.getloadavg(),
    }
    with open(os.path.join(out_dir, MARKER), "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=1)
    print(f"[warmstart] done in {timings['total_s']} s: {out_dir} ({timings})", flush=True)
    return out_dir


def load_options(run_overrides: list[str], config_path: str | None) -> tuple[WarmstartConfig, RunConfig]:
    """Split `warmstart.*` overrides from run-config overrides; returns (WarmstartConfig, RunConfig)."""
    from ..config import CPU_HEAD_DIMS, load_config, merge_config

    ours = [item[len("warmstart.") :] for item in run_overrides if item.startswith("warmstart.")]
    theirs = [item for item in run_overrides if not item.startswith("warmstart.")]
    options = merge_config(WarmstartConfig, None, ours, prefix="warmstart.")
    if options.hidden_size % options.heads or options.hidden_size // options.heads not in CPU_HEAD_DIMS:
        raise ConfigError(
            f"warmstart.hidden_size={options.hidden_size} / warmstart.heads={options.heads} must give a head "
            "dimension vLLM's CPU attention supports (e.g. 64: hidden 256 with 4 heads)"
        )
    return options, load_config(config_path, theirs)
