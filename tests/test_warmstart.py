"""Warm start: generated tasks against the real sandbox check, determinism and held-out separation, scripted
transcripts through the real episode loops (Docker sandbox), and a very small end-to-end warm start."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re

import pytest

from selfchallenge.config import ConfigError, EnvSpec, RunConfig, SandboxConfig
from selfchallenge.eval.harness import heldout_items
from selfchallenge.rollout.sandbox_client import LocalSandbox
from selfchallenge.tasks.parser import format_task
from selfchallenge.tasks.record import load_tasks
from selfchallenge.warmstart import FLAWS, GENERATOR_DOMAINS, WarmstartConfig, build_heldout, generate_tasks
from selfchallenge.warmstart.families import FAMILY_NAMES, TRADE_WORDINGS
from selfchallenge.warmstart.families_tau import RETAIL_FAMILIES
from selfchallenge.warmstart.generators import FAMILIES, assemble
from selfchallenge.warmstart.recipe import load_options, run_settings, task_key, training_tasks, warmstart
from selfchallenge.warmstart.transcripts import (
    TranscriptBudget,
    challenger_transcripts,
    challenger_turns,
    executor_transcripts,
    executor_turns,
)

pytestmark = pytest.mark.docker


def _every_family_and_flaw() -> list:
    """One good task per family, and every flaw on a task of every domain."""
    rng = random.Random(7)
    items = [assemble(family(rng)) for families in FAMILIES.values() for family in families]
    for families in FAMILIES.values():
        for flaw in FLAWS:
            items.append(assemble(families[0](rng), flaw))
    return items


def test_good_tasks_are_kept_and_flawed_ones_rejected_by_the_real_check(docker_pool):
    items = _every_family_and_flaw() + generate_tasks(24, seed=3, domains=GENERATOR_DOMAINS, flawed_rate=0.5)
    verdicts = docker_pool.check_many([item.task.sandbox_payload() for item in items], min_failure_cases=1)
    got = [(item.family, item.flaw, verdict["reason"]) for item, verdict in zip(items, verdicts, strict=True)]
    assert got == [(item.family, item.flaw, item.expected_reason) for item in items]
    assert {item.flaw for item in items} == {None, *FLAWS}
    assert sum(v["kept"] for v in verdicts) == sum(item.flaw is None for item in items)


def test_generators_are_deterministic_and_heldout_never_overlaps_training(tmp_path):
    first = generate_tasks(60, seed=5, domains=GENERATOR_DOMAINS, flawed_rate=0.3)
    again = generate_tasks(60, seed=5, domains=GENERATOR_DOMAINS, flawed_rate=0.3)
    assert [g.task.to_dict() for g in first] == [g.task.to_dict() for g in again]
    assert [g.task.instruction for g in generate_tasks(60, seed=6, domains=GENERATOR_DOMAINS)] != [
        g.task.instruction for g in first
    ]
    assert len({task_key(g.task) for g in first}) == 60
    assert {g.task.env_config["domain"] for g in first} == set(GENERATOR_DOMAINS)
    assert 0 < sum(g.flaw is not None for g in first) < 60

    options = WarmstartConfig(seed=5, challenger_transcripts=40, executor_transcripts=200)
    trade = RunConfig(envs=[EnvSpec(env_config={"domain": "trade_calculator"})])
    challenger, executor = training_tasks(options, run_settings(trade, options))
    training = {task_key(g.task) for g in challenger + executor}
    path = str(tmp_path / "heldout.jsonl")
    heldout = build_heldout(path, 40, seed=5, domains=["trade_calculator"], exclude=training)
    assert len(heldout) == 40 and not {task_key(t) for t in heldout} & training
    loaded = load_tasks(path)
    assert [t.to_dict() for t in loaded] == [t.to_dict() for t in heldout]
    assert all(t.provenance["flaw"] is None and t.provenance["heldout"] for t in loaded)
    # the pipeline reads it through eval.heldout_tasks
    items = heldout_items(path)
    opening = items[0].opening[0]["content"]
    assert items[0].task.instruction in opening and "Given values (already defined as Python variables)" in opening
    # the held-out stream without exclusions shares tasks with training: the exclusion is doing work
    unfiltered = {task_key(g.task) for g in generate_tasks(2000, seed=5 + 10_000, domains=["trade_calculator"])}
    assert unfiltered & training


def test_executor_families_split_the_heldout_set_into_transfer_and_retention(tmp_path):
    assert {g.family for g in generate_tasks(200, seed=3, domains=GENERATOR_DOMAINS)} == {
        name for domain in GENERATOR_DOMAINS for name in FAMILY_NAMES[domain]
    }
    # several wordings per trade question: neither role can succeed by memorising one string
    tariff = [g.task.instruction for g in generate_tasks(60, seed=3) if g.family == "trade_tariff"]
    assert len(set(tariff)) == len(TRADE_WORDINGS["trade_tariff"]) > 1
    seen = ["trade_convert", "trade_highest"]
    options = WarmstartConfig(seed=2, challenger_transcripts=60, executor_transcripts=20, executor_families=seen)
    trade = RunConfig(envs=[EnvSpec(env_config={"domain": "trade_calculator"})])
    settings = run_settings(trade, options)
    challenger, executor = training_tasks(options, settings)
    assert {g.family for g in executor} == set(seen)  # the executor's transcripts: only its families
    assert {g.family for g in challenger} == set(FAMILY_NAMES["trade_calculator"])  # the challenger's: all of them
    exclude = [task_key(g.task) for g in challenger + executor]
    heldout = build_heldout(str(tmp_path / "h.jsonl"), 40, 2, settings.domains, exclude, seen)
    splits = {t.provenance["generator"]: t.provenance["split"] for t in load_tasks(str(tmp_path / "h.jsonl"))}
    assert set(splits.values()) == {"transfer", "retention"} and len(heldout) == 40
    assert all((split == "retention") == (family in seen) for family, split in splits.items())
    # no executor_families: every held-out task is retention, and the executor stream is the unfiltered one
    everything = WarmstartConfig(seed=2, challenger_transcripts=60, executor_transcripts=20)
    _, unfiltered = training_tasks(everything, run_settings(trade, everything))
    assert len({g.family for g in unfiltered}) > 2
    plain = build_heldout(str(tmp_path / "p.jsonl"), 10, 2, settings.domains, exclude)
    assert {t.provenance["split"] for t in plain} == {"retention"}
    with pytest.raises(ConfigError, match=r"warmstart.executor_families has \['decoder_hex'\].*trade_tariff"):
        run_settings(trade, WarmstartConfig(executor_families=["decoder_hex"]))


def test_executor_families_split_a_tau_world_too_and_name_only_their_own_environment(tmp_path):
    seen = ["retail_order_status", "retail_cancel", "trade_convert"]
    options = WarmstartConfig(seed=1, challenger_transcripts=16, executor_transcripts=8, executor_families=seen)
    both = RunConfig(envs=[EnvSpec(env_config={"domain": "trade_calculator"}), EnvSpec(name="retail")])
    settings = run_settings(both, options)
    challenger, executor = training_tasks(options, settings)
    by_env = {env: {g.family for g in executor if g.task.env == env} for env in ("calculation", "retail")}
    assert by_env == {"calculation": {"trade_convert"}, "retail": {"retail_order_status", "retail_cancel"}}
    assert {g.family for g in challenger if g.task.env == "retail"} == {f.__name__ for f in RETAIL_FAMILIES}
    exclude = [task_key(g.task) for g in challenger + executor]
    heldout = build_heldout(str(tmp_path / "h.jsonl"), 12, 1, settings.domains, exclude, seen, settings.worlds)
    assert [sum(t.env == env for t in heldout) for env in ("calculation", "retail")] == [12, 12]
    assert not {task_key(t) for t in heldout} & set(exclude)
    for task in heldout:
        assert task.provenance["split"] == ("retention" if task.provenance["generator"] in seen else "transfer")
    retail_splits = {t.provenance["split"] for t in heldout if t.env == "retail"}
    assert retail_splits == {"transfer", "retention"}
    # naming only calculation families leaves every retail family to the executor (and the reverse)
    calc_only = WarmstartConfig(seed=1, challenger_transcripts=4, executor_transcripts=8, executor_families=seen[2:])
    _, executor = training_tasks(calc_only, run_settings(both, calc_only))
    assert len({g.family for g in executor if g.task.env == "retail"}) > 2
    with pytest.raises(ConfigError, match=r"\['retail_refund'\].*retail_address"):
        run_settings(both, WarmstartConfig(executor_families=["retail_refund"]))


def _sampled_tokens(trajectory) -> list[int]:
    return [tok for mask, tok in zip(trajectory.loss_mask, trajectory.response_ids, strict=True) if mask]


def _scripted_tokens(chat, turns: list[str]) -> list[int]:
    tokens: list[int] = []
    for text in turns:
        tokens += chat.tokenizer.encode(text, add_special_tokens=False) + chat.stop_token_ids
    return tokens


def test_transcripts_mask_exactly_the_scripted_turns_and_keep_only_solved_episodes(docker_pool, tiny_chat):
    sandbox = LocalSandbox(docker_pool)
    budget = TranscriptBudget(explore_turns=2, challenger_max_tokens=100_000, executor_max_tokens=100_000)
    tasks = generate_tasks(6, seed=11, domains=GENERATOR_DOMAINS)
    flawed = generate_tasks(8, seed=12, domains=["trade_calculator"], flawed_rate=1.0)
    challenger, reasons = asyncio.run(challenger_transcripts(tasks[:3] + flawed[:4], tiny_chat, sandbox, budget))
    # the syntax-error, lenient and wrong-constant tasks still parse; a task without failure cases does not
    assert reasons == {"parsed": 6, "missing_failure_cases": 1}
    for item, trajectory in zip(tasks[:3] + flawed[:4], challenger, strict=True):
        assert trajectory.role == "challenger" and trajectory.reward == 1.0
        assert _sampled_tokens(trajectory) == _scripted_tokens(tiny_chat, challenger_turns(item, 2))
        assert trajectory.info["explore_turns_used"] == 2
        observations = [m["content"] for m in trajectory.messages if m["content"].startswith("Observation:")]
        assert observations[0] == f"Observation:\n{item.value}"  # exploring ran the solution on the inputs
        assert trajectory.messages[-1]["content"] == format_task(item.task)

    wrong = generate_tasks(1, seed=14)[0]
    wrong.executor_code = wrong.task.failure_cases[0]  # a transcript the verifier rejects is dropped
    items = [*tasks, wrong]
    kept, outcomes = asyncio.run(executor_transcripts(items, tiny_chat, sandbox, budget))
    assert sum(outcomes.values()) == 7 and sum(v for k, v in outcomes.items() if k.endswith("reward=1")) == 6
    assert len(kept) == 6 and all(t.reward == 1.0 and t.role == "executor" for t in kept)
    for item, trajectory in zip(items[:6], kept, strict=True):
        assert _sampled_tokens(trajectory) == _scripted_tokens(tiny_chat, executor_turns(item))
        assert trajectory.info["tool_calls"] >= 1


def test_warmstart_options_name_the_bad_key():
    with pytest.raises(ConfigError, match="warmstart.epochz"):
        load_options(["warmstart.epochz=2"], None)
    with pytest.raises(ConfigError, match="head"):
        load_options(["warmstart.hidden_size=96", "warmstart.heads=4"], None)
    options, run_cfg = load_options(["warmstart.epochs=2", "challenger.explore_turns=3"], None)
    assert options.epochs == 2 and run_cfg.challenger.explore_turns == 3


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_tiny_warmstart_runs_end_to_end_and_is_cached(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = WarmstartConfig(
        hidden_size=128,
        heads=2,
        vocab_size=700,
        challenger_transcripts=3,
        executor_transcripts=6,
        epochs=1,
        mini_batch_size=5,
        heldout_tasks=4,
        num_cpus=1,
    )
    run_cfg = RunConfig(
        envs=[EnvSpec(env_config={"domain": "trade_calculator"})],  # the warm start needs a generator domain
        sandbox=SandboxConfig(backend="docker", num_workers=1, max_sessions=4),
    )
    out = str(tmp_path / "warm")
    assert warmstart(options, out, run_cfg) == out
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.hidden_size == 128 and tokenizer.chat_template
    with open(os.path.join(out, "warmstart.json"), encoding="utf-8") as handle:
        marker = json.load(handle)
    assert marker["transcripts"]["challenger"] == 3 and marker["transcripts"]["executor"] == 6
    assert marker["training"]["epochs"][0]["steps"] == 2
    assert len(load_tasks(os.path.join(out, "heldout.jsonl"))) == 4
    # the same recipe is reused without retraining; a different one refuses a foreign folder
    stamp = os.path.getmtime(os.path.join(out, "warmstart.json"))
    assert warmstart(options, out, run_cfg) == out
    assert os.path.getmtime(os.path.join(out, "warmstart.json")) == stamp
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        warmstart(options, str(foreign), run_cfg)


WORLD_ENVS = ["web_browsing", "retail", "airline"]


def _world_tasks(env_name: str, n: int, seed: int, flawed_rate: float):
    from selfchallenge.warmstart.recipe import WORLD_FAMILIES
    from selfchallenge.warmstart.scripted import generate_scripted_tasks

    return generate_scripted_tasks(env_name, {}, WORLD_FAMILIES[env_name], n, seed, flawed_rate)


@pytest.mark.parametrize("env_name", WORLD_ENVS)
def test_world_families_are_kept_and_their_flaws_caught_by_the_real_check(docker_pool, env_name):
    from selfchallenge.warmstart.recipe import WORLD_FAMILIES

    items = _world_tasks(env_name, 24, seed=1, flawed_rate=0.0) + _world_tasks(env_name, 16, seed=2, flawed_rate=1.0)
    assert {item.family.split("_")[0] for item in items} == {env_name.split("_")[0]}
    assert len({item.family for item in items}) >= len(WORLD_FAMILIES[env_name])  # every family drawn
    assert {item.flaw for item in items} == {None, *FLAWS}
    verdicts = docker_pool.check_many([item.task.sandbox_payload() for item in items], min_failure_cases=1)
    got = [(item.family, item.flaw, verdict["reason"]) for item, verdict in zip(items, verdicts, strict=True)]
    assert got == [(item.family, item.flaw, item.expected_reason) for item in items]
    again = _world_tasks(env_name, 24, seed=1, flawed_rate=0.0)
    assert [g.task.to_dict() for g in again] == [g.task.to_dict() for g in items[:24]]


@pytest.mark.parametrize("env_name", WORLD_ENVS)
def test_world_transcripts_explore_what_the_task_is_about_and_solve_it(docker_pool, tiny_chat, env_name):
    from selfchallenge.warmstart.transcripts import user_lines, user_transcripts

    sandbox = LocalSandbox(docker_pool)
    budget = TranscriptBudget(explore_turns=2, challenger_max_tokens=100_000, executor_max_tokens=100_000)
    items = _world_tasks(env_name, 4, seed=3, flawed_rate=0.0)
    challenger, reasons = asyncio.run(challenger_transcripts(items, tiny_chat, sandbox, budget))
    assert reasons == {"parsed": 4}
    for item, trajectory in zip(items, challenger, strict=True):
        assert _sampled_tokens(trajectory) == _scripted_tokens(tiny_chat, challenger_turns(item, 2))
        observation = next(m["content"] for m in trajectory.messages if m["content"].startswith("Observation:"))
        # the discovery tools, seeded by the episode id, showed the records the task was written about
        facts = re.findall(r"#W\d+|[\w.]+@[\w-]+\.\w+|[a-z]+_[a-z]+_\d+|\b[A-Z0-9]{6}\b", item.task.instruction)
        facts += re.findall(r"click_url\('(/[^']+)'\)\)$", item.task.solution.splitlines()[-2])
        assert facts and all(fact in observation for fact in facts), (facts, observation[:300])
    kept, outcomes = asyncio.run(executor_transcripts(items, tiny_chat, sandbox, budget))
    assert len(kept) == 4 and all(t.reward == 1.0 for t in kept), outcomes
    for item, trajectory in zip(items, kept, strict=True):
        assert _sampled_tokens(trajectory) == _scripted_tokens(tiny_chat, executor_turns(item))
        if env_name != "web_browsing":  # the user's lines are context (mask 0), never trained as the executor's
            assert trajectory.reason == "user_stop"
            for line in user_lines(item)[:-1]:
                assert {"role": "user", "content": line} in trajectory.messages
    users = user_transcripts(items, tiny_chat)
    assert len(users) == (0 if env_name == "web_browsing" else 4)
    for item, trajectory in zip(items if users else [], users, strict=True):
        assert _sampled_tokens(trajectory) == _scripted_tokens(tiny_chat, user_lines(item))
        assert item.task.instruction in trajectory.messages[0]["content"] and trajectory.role == "user"
