"""learner.replay_from / replay_fraction (learner/replay.py): how many earlier successes join an iteration's RFT
data, that the draw is balanced and seeded, and that a bad source is refused by name."""

from __future__ import annotations

import pytest

from selfchallenge.config import ConfigError
from selfchallenge.learner.replay import draw_replay, replay_count, replay_for, replay_source
from selfchallenge.rollout.trajectory import Trajectory, save_trajectories


def _episode(i: int, reward: float = 1.0, role: str = "executor") -> Trajectory:
    return Trajectory(
        id=f"t{i}/0", task_id=f"t{i}", role=role, env="calculation", prompt_ids=[1, 2], response_ids=[3, 4],
        loss_mask=[1, 1], logprobs=[0.0, 0.0], reward=reward, reason="answered",
    )  # fmt: skip


def test_the_replayed_share_of_the_training_set_is_the_fraction():
    assert replay_count(0, 0.2) == 0  # nothing of its own: nothing to keep in balance
    assert replay_count(80, 0.0) == 0
    assert replay_count(80, 0.2) == 20  # 20 of 100
    assert replay_count(30, 0.5) == 30


def test_the_draw_is_balanced_seeded_and_keeps_ids_apart():
    source = [_episode(i) for i in range(4)]
    drawn = draw_replay(source, 10, seed=0, iteration=1)
    assert len(drawn) == 10
    uses = {t.task_id: sum(d.info["replayed_from"] == t.id for d in drawn) for t in source}
    assert sorted(uses.values()) == [2, 2, 3, 3]  # floor or ceil of 10 / 4
    assert len({d.id for d in drawn}) == 10 and all(d.id.startswith("replay/1/") for d in drawn)
    assert all(d.group_id != d.task_id for d in drawn)  # no group baseline shared with the iteration's own episodes
    assert [d.id for d in draw_replay(source, 10, 0, 1)] == [d.id for d in drawn]
    assert [d.id for d in draw_replay(source, 10, 0, 2)] != [d.id.replace("replay/1/", "replay/2/") for d in drawn]
    assert drawn[0].response_ids == source[int(drawn[0].task_id[1:])].response_ids  # the tokens are untouched


def test_a_source_keeps_only_successful_executor_episodes_and_a_bad_one_is_refused(tmp_path):
    folder = str(tmp_path / "episodes")
    save_trajectories(folder, [_episode(0), _episode(1, reward=0.0), _episode(2, role="challenger")])
    assert [t.id for t in replay_source(folder)] == ["t0/0"]
    with pytest.raises(ConfigError, match="is not a folder"):
        replay_source(str(tmp_path / "missing"))
    failed = str(tmp_path / "failed")
    save_trajectories(failed, [_episode(0, reward=0.0)])
    with pytest.raises(ConfigError, match="no successful executor episode"):
        replay_source(failed)


def test_an_iteration_replays_in_proportion_to_its_own_executor_successes(tmp_path):
    folder = str(tmp_path / "episodes")
    save_trajectories(folder, [_episode(0), _episode(1)])
    own = [_episode(10 + i) for i in range(8)] + [_episode(20, reward=0.0), _episode(21, role="challenger")]
    assert len(replay_for(own, folder, 0.2, seed=0, iteration=0)) == 2  # 8 executor successes -> 2 of 10
    assert replay_for([_episode(20, reward=0.0)], folder, 0.2, 0, 0) == []
