"""checkpoint.keep_last: older iterations' checkpoints go, the newest N stay (test_demo checks it in a real run)."""

from selfchallenge.pipeline import prune_checkpoints


def test_only_the_newest_iterations_are_kept_in_numeric_order(tmp_path):
    for i in (0, 1, 2, 9, 10, 1000):
        (tmp_path / f"iter_{i:03d}" / "hf").mkdir(parents=True)
    (tmp_path / "notes").mkdir()  # not an iteration's: left alone
    assert prune_checkpoints(str(tmp_path), 0) == []  # 0 keeps all
    assert prune_checkpoints(str(tmp_path), 2) == ["iter_000", "iter_001", "iter_002", "iter_009"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_010", "iter_1000", "notes"]
    assert prune_checkpoints(str(tmp_path), 2) == []  # idempotent: a rerun after a crash mid-prune
    assert prune_checkpoints(str(tmp_path / "missing"), 1) == []
