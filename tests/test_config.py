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
        ("envs=[{name: bogus}]", "envs[0].name"),
        ("nokey", "nokey"),
    ],
)
def test_bad_input_names_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert key in str(info.value)


def test_group_algorithms_need_groups():
    with pytest.raises(ConfigError, match="samples_per_task"):
        load_config(None, ["learner.algorithm=grpo", "executor.samples_per_task=1"])


def test_ppo_on_challenger_episodes_needs_one_temperature():
    bad = ["learner.algorithm=ppo", "challenger.reward=kept", "challenger.sampling.temperature=0.7"]
    with pytest.raises(ConfigError, match="challenger.sampling.temperature"):
        load_config(None, bad)
    assert load_config(None, [*bad[:2], "challenger.sampling.temperature=1.0"]).challenger.reward == "kept"


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
