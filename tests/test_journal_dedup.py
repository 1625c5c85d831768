import asyncio
import json

import pytest

from selfchallenge.rollout.runner import Journal, run_journaled
from selfchallenge.tasks.dedup import cap_per_instruction, deduplicate
from selfchallenge.tasks.record import CaTTask


def test_journal_survives_a_torn_write_and_never_duplicates(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(str(path))
    journal.append({"id": "a", "v": 1})
    journal.append({"id": "b", "v": 2})
    journal.append({"id": "a", "v": 3})  # a key is recorded once
    with open(path, "a") as handle:
        handle.write('{"id": "c", "v"')  # kill -9 in the middle of a line
    again = Journal(str(path))
    assert [r["id"] for r in again.records()] == ["a", "b"] and again.records()[0]["v"] == 1
    again.append({"id": "c", "v": 4})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]


def test_run_journaled_resumes_only_missing_jobs(tmp_path):
    calls = []

    def job(key):
        async def run():
            calls.append(key)
            if key == "k2" and len(calls) < 4:
                raise RuntimeError("engine died")
            return {"id": key}

        return run

    journal = Journal(str(tmp_path / "j.jsonl"))
    jobs = [(f"k{i}", job(f"k{i}")) for i in range(4)]
    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(run_journaled(jobs, journal, concurrency=1, desc="t", retries=0))
    assert "k2" not in journal and len(journal) == 3
    records = asyncio.run(run_journaled(jobs, Journal(str(tmp_path / "j.jsonl")), concurrency=2, desc="t"))
    assert [r["id"] for r in records] == ["k0", "k1", "k2", "k3"]
    assert calls.count("k0") == 1 and calls.count("k2") == 2
    # on_error turns a failure into a journaled record instead of raising
    journal = Journal(str(tmp_path / "e.jsonl"))

    async def boom():
        raise ValueError("x")

    records = asyncio.run(run_journaled([("z", boom)], journal, 1, "t", on_error=lambda k, e: {"id": k, "err": str(e)}))
    assert records == [{"id": "z", "err": "x"}]


def test_a_failing_job_is_retried_and_an_infra_error_record_is_retried_on_resume(tmp_path):
    attempts = {"flaky": 0, "dead": 0}

    def job(key, fail_times):
        async def run():
            attempts[key] += 1
            if attempts[key] <= fail_times:
                raise RuntimeError(f"{key}: sandbox worker lost")
            return {"id": key, "reason": "answered"}

        return run

    path = str(tmp_path / "r.jsonl")
    infra = lambda key, exc: {"id": key, "reason": "infra_error", "error": str(exc)}  # noqa: E731
    jobs = [("flaky", job("flaky", 1)), ("dead", job("dead", 2))]
    records = asyncio.run(run_journaled(jobs, Journal(path), 1, "t", on_error=infra, retries=1))
    # the flaky job succeeded on its in-process retry; the dead one failed twice and is journaled as infra_error
    assert [r["reason"] for r in records] == ["answered", "infra_error"] and attempts == {"flaky": 2, "dead": 2}
    journal = Journal(path)
    assert "flaky" in journal and "dead" not in journal  # an infra_error record is not done
    records = asyncio.run(run_journaled(jobs, journal, 1, "t", on_error=infra, retries=1))
    assert [r["reason"] for r in records] == ["answered", "answered"] and attempts == {"flaky": 2, "dead": 3}
    reloaded = Journal(path)  # the retry's record replaced the infra_error one, also after a reload
    assert [r["reason"] for r in reloaded.records()] == ["answered", "answered"] and len(reloaded) == 2


def test_a_key_lost_in_every_one_of_three_runs_is_given_up_not_retried_forever(tmp_path):
    from selfchallenge.rollout.runner import GIVE_UP_AFTER

    attempts = {"killer": 0}

    async def killer():  # model output that brings its worker down every time
        attempts["killer"] += 1
        raise RuntimeError("worker died")

    path = str(tmp_path / "r.jsonl")
    infra = lambda key, exc: {"id": key, "reason": "infra_error", "error": str(exc)}  # noqa: E731
    for run in range(1, GIVE_UP_AFTER + 1):
        journal = Journal(path)
        assert "killer" not in journal and not journal.given_up("killer")  # still retried by this rerun
        asyncio.run(run_journaled([("killer", killer)], journal, 1, "t", on_error=infra, retries=1))
        assert attempts["killer"] == 2 * run
    journal = Journal(path)
    assert journal.given_up("killer") and "killer" in journal  # given up: done, as infra_error
    records = asyncio.run(run_journaled([("killer", killer)], journal, 1, "t", on_error=infra, retries=1))
    assert attempts["killer"] == 2 * GIVE_UP_AFTER and [r["reason"] for r in records] == ["infra_error"]


def _task(i, instruction, verifier="def evaluate(s, a):\n    return a == 1", env="calculation"):
    return CaTTask(f"t{i}", env, {}, instruction, verifier, "answer = 1", ["answer = 2"])


def test_dedup_keeps_first_of_near_duplicates_per_env():
    tasks = [
        _task(0, "Convert 100 at a rate of 1.5 and answer with the number."),
        _task(1, "Convert 100 at a rate of 1.5 and answer with the number!"),
        _task(2, "Decode the hex string 6869 and reverse it."),
        _task(3, "Convert 100 at a rate of 1.5 and answer with the number.", env="retail"),
        _task(0, "Convert 100 at a rate of 1.5 and answer with the number."),
    ]
    kept, dropped = deduplicate(tasks, threshold=0.9)
    assert [t.id for t in kept] == ["t0", "t2", "t3"]
    assert dropped == {"t1": "t0", "t0": "t0"}
    kept, _ = deduplicate(tasks[:3], threshold=1.01)
    assert len(kept) == 3


def test_the_same_question_about_other_inputs_is_another_task():
    same = [_task(i, "Convert the price at the rate.") for i in range(3)]
    same[1].env_config = {"inputs": {"price": 100, "rate": 2}}
    same[2].env_config = {"inputs": {"price": 300, "rate": 2}}
    kept, dropped = deduplicate(same, threshold=0.9)
    assert [t.id for t in kept] == ["t0", "t1", "t2"] and not dropped
    twin = _task(3, "Convert the price at the rate!")
    twin.env_config = {"inputs": {"price": 300, "rate": 2}}
    assert deduplicate([*same, twin], threshold=0.9)[1] == {"t3": "t2"}


def test_instruction_cap_keeps_the_first_of_each_question_per_env():
    tasks = [_task(i, "Convert the price at the rate.") for i in range(4)]
    tasks.append(_task(4, "convert the  price at the RATE."))  # the same instruction once normalised
    tasks.append(_task(5, "How much is the tariff?"))
    tasks.append(_task(6, "Convert the price at the rate.", env="retail"))
    kept, dropped = cap_per_instruction(tasks, limit=2)
    assert [t.id for t in kept] == ["t0", "t1", "t5", "t6"]
    assert dropped == ["t2", "t3", "t4"]
    assert cap_per_instruction(tasks, limit=0) == (tasks, [])
