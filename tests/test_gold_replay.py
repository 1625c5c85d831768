"""Gold replay: every tau-bench task in the shared data reproduces its gold database hash."""

import json
import random

import pytest

from selfchallenge.envs import make_env
from selfchallenge.envs.base import consistent_hash
from selfchallenge.envs.replay import apply_actions, gold_hash, replay_tasks

TASK_FILES = [("retail", "tasks_dev.json"), ("retail", "tasks_train.json"), ("airline", "tasks_dev.json")]


def _config(shared_data, domain):
    return {"data_dir": str(shared_data / "taubench" / domain)}


def _tasks(shared_data, domain, file_name):
    return json.loads((shared_data / "taubench" / domain / file_name).read_text())


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_untouched_database_has_the_initial_hash(shared_data, domain):
    expected = json.loads((shared_data / "taubench" / "initial_db_hashes.json").read_text())[domain]
    env = make_env(domain, _config(shared_data, domain))
    assert env.state_hash() == expected
    assert consistent_hash(env.snapshot()) == expected
    assert gold_hash(domain, _config(shared_data, domain), []) == expected


@pytest.mark.parametrize("domain, file_name", TASK_FILES)
def test_every_task_reproduces_its_gold_hash(shared_data, domain, file_name):
    tasks = _tasks(shared_data, domain, file_name)
    results = replay_tasks(domain, _config(shared_data, domain), tasks)
    assert [r["index"] for r in results] == list(range(len(tasks)))
    mismatched = [r["index"] for r, task in zip(results, tasks, strict=True) if r["db_hash"] != task["gold_db_hash"]]
    assert mismatched == [], f"{len(mismatched)} of {len(tasks)} {domain} tasks differ from their gold hash"
    assert all(isinstance(r["errors"], int) and r["errors"] >= 0 for r in results)


def test_task_counts_cover_the_545_reference_tasks(shared_data):
    assert sum(len(_tasks(shared_data, domain, name)) for domain, name in TASK_FILES) == 545


def test_failing_and_unknown_actions_count_as_errors_and_change_nothing(shared_data):
    config = _config(shared_data, "retail")
    initial = make_env("retail", config).state_hash()
    env = make_env("retail", config)
    delivered = next(order_id for order_id, order in env.data["orders"].items() if order["status"] == "delivered")
    actions = [
        {"name": "cancel_pending_order", "kwargs": {"order_id": delivered, "reason": "no longer needed"}},
        {"name": "no_such_tool", "kwargs": {}},
        {"name": "get_order_details", "kwargs": {"order_id": "#W0"}},
        {"name": "transfer_to_human_agents", "kwargs": {"summary": "skipped in replay"}},
    ]
    [result] = replay_tasks("retail", config, [{"actions": actions}])
    assert result == {"index": 0, "db_hash": initial, "errors": 3}


def test_terminate_tools_are_skipped_and_order_of_writes_matters(shared_data):
    config = _config(shared_data, "retail")
    env = make_env("retail", config)
    pending = [order_id for order_id, order in env.data["orders"].items() if order["status"] == "pending"][:2]
    cancel = [
        {"name": "cancel_pending_order", "kwargs": {"order_id": o, "reason": "ordered by mistake"}} for o in pending
    ]
    transfer = {"name": "transfer_to_human_agents", "kwargs": {"summary": "x"}}
    with_transfer = gold_hash("retail", config, [cancel[0], transfer, cancel[1]])
    assert with_transfer == gold_hash("retail", config, cancel)
    assert with_transfer != gold_hash("retail", config, cancel[:1])
    # The same actions through a live environment give the same hash.
    assert apply_actions(env, cancel) == 0
    assert env.state_hash() == with_transfer


def test_fast_state_hash_equals_tau_bench_hash_on_changed_databases(shared_data):
    config = _config(shared_data, "retail")
    env = make_env("retail", config)
    for task in _tasks(shared_data, "retail", "tasks_dev.json")[:6]:
        apply_actions(env, task["actions"])
    assert env.state_hash() == consistent_hash(env.data)
    # An int that becomes an equal float changes tau-bench's hash text; the cached hash must see it too.
    env = make_env("retail", config)
    card = next(
        method
        for user in env.data["users"].values()
        for method in user["payment_methods"].values()
        if method["source"] == "gift_card" and isinstance(method["balance"], int)
    )
    card["balance"] = float(card["balance"])
    assert env.state_hash() == consistent_hash(env.data) != make_env("retail", config).state_hash()
    # A new record, and a new top-level key, are hashed too.
    env.data["orders"]["#W_new"] = {"order_id": "#W_new"}
    env.data["extra"] = [1, {"b": 2}]
    assert env.state_hash() == consistent_hash(env.data)


def test_replay_rejects_malformed_tasks_with_clear_messages(shared_data):
    config = _config(shared_data, "airline")
    with pytest.raises(ValueError, match=r"tasks\[0\]\.actions\[1\]"):
        replay_tasks("airline", config, [{"actions": [{"name": "think", "kwargs": {"thought": ""}}, {"kwargs": {}}]}])
    with pytest.raises(ValueError, match=r"tasks\[1\] must be an object with an 'actions' list"):
        replay_tasks("airline", config, [{"actions": []}, {"instruction": "no actions"}])
    with pytest.raises(ValueError, match="kwargs"):
        gold_hash("airline", config, [{"name": "think", "kwargs": ["not", "a", "dict"]}])


SMALL_WORLDS = {
    "retail": {"seed": 9, "num_users": 8, "num_orders": 20, "num_products": 6},
    "airline": {"seed": 9, "num_users": 8, "num_flights": 8, "num_reservations": 20},
}


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_cached_hash_and_in_place_reset_survive_arbitrary_edits(domain):
    """Random edits (type drift, new/removed/reordered records, new tables): the fast hash stays exact and
    reset() gives back the pristine world, key order included."""
    rng = random.Random(domain)
    config = SMALL_WORLDS[domain]
    env, pristine = make_env(domain, config), make_env(domain, config)
    data, initial = env.data, pristine.state_hash()
    for trial in range(120):
        table = data[rng.choice([name for name in pristine.data if name in data])]
        key = rng.choice(list(table))
        choice = rng.random()
        if choice < 0.4:
            record = table[key]
            field = rng.choice(sorted(record))
            value = record[field]
            if isinstance(value, int) and not isinstance(value, bool):
                record[field] = float(value)  # equal value, different hash text
            elif isinstance(value, (list, dict)):
                record[field] = value + ["x"] if isinstance(value, list) else {**value, "x": 1}
            else:
                record[field] = f"{value}x"
        elif choice < 0.55:
            table[f"NEW{trial}"] = {"n": trial}
        elif choice < 0.65:
            del table[key]
        elif choice < 0.75:
            table[key] = table.pop(key)  # same records, new order
        elif choice < 0.8:
            data["extra"] = [trial]
        assert env.state_hash() == consistent_hash(data)
        if rng.random() < 0.25:
            if rng.random() < 0.5:
                env.reset()
            else:
                expected = consistent_hash(data)
                assert env.hash_and_reset() == expected
            assert env.state_hash() == initial and data == pristine.data
            assert [list(t) for t in data.values()] == [list(t) for t in pristine.data.values()]
