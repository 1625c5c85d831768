import re
from pathlib import Path

import pytest

from selfchallenge.config import CONFIG_DIR, ConfigError, RunConfig, load_config, to_yaml

ROOT = Path(__file__).resolve().parents[1]


def _keys(obj, prefix=""):
    import dataclasses

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _keys(value, key + ".")
        else:
            yield key


def test_defaults_and_overrides():
    cfg = load_config(None, ["learner.lr=3e-4", "executor.samples_per_task=8", "envs=[{name: retail}]"])
    assert cfg.learner.lr == pytest.approx(3e-4)
    assert cfg.executor.samples_per_task == 8
    assert cfg.envs[0].name == "retail" and cfg.envs[0].env_config == {}


@pytest.mark.parametrize(
    "override, key",
    [
        ("learner.lrr=1", "learner.lrr"),
        ("learner.lr=abc", "learner.lr"),
        ("learner.algorithm=foo", "learner.algorithm"),
        ("sandbox.backend=chroot", "sandbox.backend"),
        ("executor.max_turns=0", "executor.max_turns"),
        ("challenger.max_per_instruction=-1", "challenger.max_per_instruction"),
        ("challenger.reward=solved", "challenger.reward"),
        ("challenger.filter=verifier", "challenger.filter"),
        ("checkpoint.keep_last=-1", "checkpoint.keep_last"),
        ("executor.resample_unsolved=-2", "executor.resample_unsolved"),
        ("envs=[{name: bogus}]", "envs[0].name"),
        ("nokey", "nokey"),
    ],
)
def test_bad_input_names_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert key in str(info.value)


def test_an_empty_override_is_the_empty_string():
    heldout = load_config(None, ["eval.heldout_tasks=/x", "eval.heldout_tasks="]).eval.heldout_tasks
    assert heldout == ""
    with pytest.raises(ConfigError, match="learner.lr"):  # not a number: the key is named
        load_config(None, ["learner.lr="])


def test_group_algorithms_need_groups():
    with pytest.raises(ConfigError, match="samples_per_task"):
        load_config(None, ["learner.algorithm=grpo", "executor.samples_per_task=1"])


def test_async_rollouts_need_the_importance_weight_for_policy_gradients_and_a_policy_that_changes():
    assert load_config(None, ["pipeline.async_rollouts=true"]).pipeline.async_rollouts is True  # rft: no ratio
    assert load_config(None, ["pipeline.async_rollouts=true", "learner.algorithm=grpo"]).learner.tis is True
    with pytest.raises(ConfigError, match=r"learner.tis=true"):
        load_config(None, ["pipeline.async_rollouts=true", "learner.algorithm=reinforce", "learner.tis=false"])
    with pytest.raises(ConfigError, match="mode=self_improve"):
        load_config(None, ["pipeline.async_rollouts=true", "mode=distill", "model.teacher_path=/t"])


def test_roles_may_sample_at_different_temperatures():
    # each trajectory carries its own temperature, so ratio-based algorithms accept mixed roles
    mixed = ["challenger.reward=kept", "challenger.sampling.temperature=0.7", "executor.sampling.temperature=1.1"]
    for algorithm in ("ppo", "ppo_group", "grpo", "drgrpo"):
        assert load_config(None, [f"learner.algorithm={algorithm}", *mixed]).challenger.sampling.temperature == 0.7


@pytest.mark.parametrize("algorithm", ["ppo", "ppo_group", "grpo", "drgrpo", "reinforce", "rloo"])
def test_top_p_is_refused_where_the_sampler_logprobs_are_compared(algorithm):
    with pytest.raises(ConfigError, match="executor.sampling.top_p=0.9") as info:
        load_config(None, [f"learner.algorithm={algorithm}", "executor.sampling.top_p=0.9"])
    assert "whole vocabulary" in str(info.value)
    with pytest.raises(ConfigError, match="challenger.sampling.top_p=0.8"):
        load_config(None, [f"learner.algorithm={algorithm}", "challenger.reward=kept", "challenger.sampling.top_p=0.8"])
    with pytest.raises(ConfigError, match="engine.logprobs_mode=raw_logprobs"):
        load_config(None, [f"learner.algorithm={algorithm}", "engine.logprobs_mode=raw_logprobs"])
    if algorithm in ("reinforce", "rloo"):  # no ratio: only the importance weight compares with the sampler
        assert load_config(None, [f"learner.algorithm={algorithm}", "learner.tis=false", "executor.sampling.top_p=0.9"])
    for supervised in ("rft", "sft", "dpo"):
        assert load_config(None, [f"learner.algorithm={supervised}", "executor.sampling.top_p=0.9"])


def test_learner_rules_name_the_keys():
    cases = [
        (["learner.algorithm=reinforce", "learner.epochs=2"], "learner.epochs=1 and learner.mini_batch_size=0"),
        (["learner.algorithm=rloo", "learner.mini_batch_size=8"], "one on-policy gradient step"),
        (["learner.algorithm=dpo", "learner.kl_coef=0.1"], "learner.kl_coef=0"),
        (["learner.algorithm=dpo", "executor.samples_per_task=1"], "executor.samples_per_task >= 2"),
        (["learner.tis_cap=0.5"], "learner.tis_cap=0.5 must be >= 1"),
        (["learner.gae_lambda=1.5"], "learner.gae_lambda=1.5 must be in \\[0, 1\\]"),
        (["learner.dpo_beta=0"], "learner.dpo_beta=0.0 must be > 0"),
        (["learner.replay_fraction=0.2"], "learner.replay_from=<trajectories folder"),
        (["learner.algorithm=grpo", "learner.replay_fraction=0.2", "learner.replay_from=x"], "got grpo"),
        (["learner.replay_fraction=1.0", "learner.replay_from=x"], "learner.replay_fraction=1.0 must be in"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(None, overrides)
    assert load_config(None, ["learner.algorithm=ppo_group", "learner.epochs=3", "learner.mini_batch_size=8"])


def test_drgrpo_budget_defaults_to_the_episode_budget():
    assert load_config(None, ["executor.max_episode_tokens=777"]).learner.max_response_tokens == 777
    assert load_config(None, ["learner.max_response_tokens=64"]).learner.max_response_tokens == 64


def test_yaml_file_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("iterations: 3\nlearner:\n  algorithm: ppo\n")
    cfg = load_config(str(path), ["iterations=4"])
    assert cfg.iterations == 4 and cfg.learner.algorithm == "ppo"
    path.write_text("learner:\n  nonsense: 1\n")
    with pytest.raises(ConfigError, match="learner.nonsense"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))


def test_shipped_configs_load():
    configs = sorted(Path(CONFIG_DIR).glob("*.yaml"))
    assert configs, f"no configs in {CONFIG_DIR}"
    for path in configs:
        load_config(str(path))


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["seed=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(str(path)) == cfg


def test_every_key_is_documented():
    doc = (ROOT / "docs" / "config.md").read_text()
    documented = set(re.findall(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)*)`", doc))
    missing = [key for key in _keys(RunConfig()) if key not in documented]
    assert not missing, f"docs/config.md does not document: {missing}"


def test_the_paper_scale_config_holds_the_papers_settings():
    """ray_jobs/configs/paper_8b.yaml (docs/cluster.md): the paper's task count, an 8B hub id, 16 GPUs' worth of
    engines and learners, and the scale choices the docs explain."""
    cfg = load_config(str(Path(CONFIG_DIR) / "paper_8b.yaml"))
    assert cfg.model.path == "meta-llama/Llama-3.1-8B-Instruct" and cfg.challenger.tasks_per_iteration == 800
    assert cfg.engine.num_engines * cfg.engine.tensor_parallel_size + cfg.learner.num_learners == 16
    assert not cfg.engine.enforce_eager and cfg.engine.weight_sync == "collective"
    assert cfg.learner.zero_stage == 3 and cfg.learner.gradient_checkpointing and cfg.learner.mini_batch_size > 0
    assert cfg.run_dir.startswith("/shared/") and cfg.sandbox.node_resource == "sandbox"
