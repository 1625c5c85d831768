"""The loop end to end with real Ray, vLLM, Docker and DeepSpeed (tiny random model; seed tasks give the
executor something to solve): kill -9 of the driver during rollouts and during training, then a rerun of the
same command resumes with no task or trajectory lost or duplicated; and the same job through `ray job submit`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "tasks_calculation.jsonl"
GOOD = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
GOOD = [row for row in GOOD if row["provenance"]["expected_reason"] == "kept"]
SAMPLES = 6
RESAMPLE = 2
RAY = str(Path(sys.executable).parent / "ray")

pytestmark = [pytest.mark.docker, pytest.mark.vllm, pytest.mark.slow]


def _overrides(run_dir: Path, heldout: Path) -> list[str]:
    return [
        f"run_dir={run_dir}",
        "envs=[{name: calculation, env_config: {domain: trade_calculator}}]",
        f"challenger.seed_tasks={EXAMPLES}",
        "challenger.tasks_per_iteration=2",
        "challenger.explore_turns=1",
        "challenger.max_tokens=48",
        "challenger.sampling.max_tokens=24",
        f"executor.samples_per_task={SAMPLES}",
        "executor.max_turns=2",
        "executor.concurrency=1",
        "executor.sampling.max_tokens=24",
        "learner.algorithm=rft",
        "learner.failure_weight=1.0",
        "learner.lr=1e-4",
        "engine.max_model_len=4096",
        "engine.cpu_kvcache_space_gb=0.5",
        f"eval.heldout_tasks={heldout}",
        "eval.sampling.max_tokens=16",
        "ray.num_cpus=2",
    ]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "selfchallenge.cli", "run", *args],
        cwd=ROOT,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended (rc {proc.returncode}) before the expected point:\n" + log.read_text()[-4000:]
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run:\n" + log.read_text()[-4000:])
        time.sleep(0.2)


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


def _state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"done": []}


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in GOOD[:2]))
    return path


def _same_numbers(a: Path, b: Path) -> None:
    """Two runs of one seed agree on everything but timings: every episode's tokens and reward, the kept tasks,
    the trained weights bit for bit, and each metric number (logprobs only to float rounding: they depend on what
    the engine batched)."""
    import hashlib

    from selfchallenge.rollout.trajectory import load_trajectories

    def episodes(run: Path) -> dict:
        proposals = _lines(run / "iter_000/proposals.jsonl")  # seed tasks have no trajectory
        rows = {r["id"]: ((r["trajectory"] or {}).get("response_ids"), r["reason"]) for r in proposals}
        rows |= {t.id: (t.response_ids, t.reward) for t in load_trajectories(str(run / "iter_000" / "trajectories"))}
        rows |= {
            f"{path.stem}/{r['id']}": (r["messages"], r["reward"])
            for path in (run / "eval").glob("*.jsonl")
            for r in _lines(path)
        }
        return rows

    def numbers(run: Path) -> list:
        keep = {
            "check": ("funnel", "reasons"),
            "rollout": ("mean_reward", "end_reasons", "sampled_tokens"),
            "train": ("loss", "grad_norm", "loss_tokens"),
            "eval": ("results",),
        }
        return [{k: m.get(k) for k in keep[m["stage"]]} for m in _lines(run / "metrics.jsonl") if m["stage"] in keep]

    def kept(run: Path) -> list:
        rows = [{**r, "check": {**r["check"], "timings": None}} for r in _lines(run / "iter_000/tasks_kept.jsonl")]
        return sorted(rows, key=lambda r: r["id"])

    def weights(run: Path) -> str:
        return hashlib.sha256((run / "checkpoints/iter_000/hf/model.safetensors").read_bytes()).hexdigest()

    assert episodes(a) == episodes(b)
    assert kept(a) == kept(b)
    assert numbers(a) == numbers(b) and weights(a) == weights(b)


def test_kill_9_during_rollouts_and_training_then_resume_and_the_same_seed_gives_the_same_numbers(tmp_path, heldout):
    """...and the run, killed twice and resumed, equals one run of the same seed straight through: with per-request
    seeds (engine.seed_requests) an episode samples the same tokens whether it ran before the kill or after, and
    whatever else 3 concurrent episodes batched with it."""
    run_dir = tmp_path / "run"
    # executor.resample_unsolved: a task none of whose first SAMPLES episodes succeeded gets RESAMPLE more, in a
    # second round that the resumed and the straight-through run must agree on too
    seeded = ["engine.seed_requests=true", "executor.concurrency=3", f"executor.resample_unsolved={RESAMPLE}"]
    args = [*_overrides(run_dir, heldout), *seeded, "challenger.reward=kept"]  # the challenger's 2 episodes train too
    rollouts = run_dir / "iter_000" / "rollouts.jsonl"
    first_round = len(GOOD) * SAMPLES

    # 1. kill -9 while executor episodes are being journaled
    proc = _start(args, tmp_path / "run1.log")
    _wait_for(lambda: len(_lines(rollouts)) >= 3, proc, 900, tmp_path / "run1.log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(_lines(rollouts))
    assert done_at_kill < first_round, "the rollouts finished before the kill; the test proves nothing"
    assert "iter_0/solve" not in _state(run_dir)["done"]

    # 2. rerun: resumes the rollouts, then kill -9 while the learner trains
    proc = _start(args, tmp_path / "run2.log")
    _wait_for(lambda: "iter_0/solve" in _state(run_dir)["done"], proc, 900, tmp_path / "run2.log")
    time.sleep(3)
    assert proc.poll() is None and "iter_0/train" not in _state(run_dir)["done"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    # 3. rerun to the end
    proc = _start(args, tmp_path / "run3.log")
    assert proc.wait(timeout=1200) == 0, (tmp_path / "run3.log").read_text()[-4000:]
    log3 = (tmp_path / "run3.log").read_text()
    assert "resuming" in log3 and "iter_0/check" in log3

    state = _state(run_dir)
    for stage in ("eval_before", "iter_0/propose", "iter_0/check", "iter_0/solve", "iter_0/train", "eval_iter_000"):
        assert state["done"].count(stage) == 1, (stage, state["done"])
    # every kept task's k episodes exactly once, and RESAMPLE more of each task that none of them solved, journal
    # and dataset alike
    records = _lines(rollouts)
    sample_of = {r["id"]: int(r["id"].rsplit("/", 1)[1]) for r in records}
    solved = {r["task_id"] for r in records if sample_of[r["id"]] < SAMPLES and r.get("reward", 0) >= 1.0}
    assert len(solved) < len(GOOD), "every task was solved in the first round; the resampling is not exercised"
    expected = first_round + RESAMPLE * (len(GOOD) - len(solved))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == expected
    resampled = {r["task_id"] for r in records if sample_of[r["id"]] >= SAMPLES}
    assert resampled == {row["id"] for row in GOOD} - solved
    from selfchallenge.rollout.trajectory import load_trajectories
    from selfchallenge.tasks.record import load_tasks

    kept = load_tasks(str(run_dir / "iter_000" / "tasks_kept"))
    assert sorted(t.id for t in kept) == sorted(row["id"] for row in GOOD)
    trajectories = load_trajectories(str(run_dir / "iter_000" / "trajectories"))
    assert len(trajectories) == expected and len({t.id for t in trajectories}) == expected
    proposals = [r["id"] for r in _lines(run_dir / "iter_000" / "proposals.jsonl")]
    assert len(proposals) == len(set(proposals)) == 2 + len(_lines(EXAMPLES))
    # training finished once and its model is what the engines load on resume
    model = state["models"]["0"]
    assert (Path(model["hf"]) / "config.json").exists() and Path(model["checkpoint"]).exists()
    # report and metrics
    assert (run_dir / "report.html").exists() and (run_dir / "plots" / "yield_funnel.png").exists()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    check = next(m for m in metrics if m["stage"] == "check")
    assert check["funnel"]["deduplicated"] == check["funnel"]["to_executor"] == len(GOOD)
    assert {m["stage"] for m in metrics} >= {"propose", "check", "rollout", "train", "eval"}
    rollout = next(m for m in metrics if m["stage"] == "rollout")
    assert rollout["episodes"] == expected and rollout["resampled_episodes"] == expected - first_round, rollout
    train = next(m for m in metrics if m["stage"] == "train")
    assert train["trajectories"] == expected + 2 and 0.0 <= train["reward/challenger"] <= 1.0, train

    # 4. the same seed straight through, in another run dir
    straight = tmp_path / "straight"
    proc = _start([*_overrides(straight, heldout), *seeded, "challenger.reward=kept"], tmp_path / "run4.log")
    assert proc.wait(timeout=1200) == 0, (tmp_path / "run4.log").read_text()[-4000:]
    _same_numbers(run_dir, straight)


def test_async_rollouts_overlap_training_stay_one_version_behind_and_resume_after_kill_9(tmp_path, heldout):
    """pipeline.async_rollouts: iteration 1's proposals are written while iteration 0 trains (the kill -9 comes
    then); the rerun resumes, overlaps iteration 2's generation with iteration 1's training, and every iteration
    after the first trains on rollouts of the weights one version back."""
    run_dir = tmp_path / "run"
    args = [*_overrides(run_dir, heldout), "iterations=3", "eval.every=0", "pipeline.async_rollouts=true"]
    args += ["challenger.reward=kept"]  # iterations 1 and 2 train on their challenger episodes
    expected = len(GOOD) * SAMPLES
    metrics_path = run_dir / "metrics.jsonl"

    # 1. kill -9 once iteration 1's proposals are done while iteration 0's training is not
    proc = _start(args, tmp_path / "run1.log")
    _wait_for(lambda: "iter_1/propose" in _state(run_dir)["done"], proc, 900, tmp_path / "run1.log")
    assert "iter_0/train" not in _state(run_dir)["done"], "training ended first: nothing overlapped"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not [m for m in _lines(metrics_path) if m["stage"] == "train"]
    ahead = _lines(run_dir / "iter_001" / "proposals.jsonl")
    assert len(ahead) == 2 and all(r["trajectory"]["weight_version"] == 0 for r in ahead), ahead

    # 2. rerun to the end
    proc = _start(args, tmp_path / "run2.log")
    assert proc.wait(timeout=1500) == 0, (tmp_path / "run2.log").read_text()[-4000:]
    state = _state(run_dir)
    stages = [f"iter_{i}/{name}" for i in range(3) for name in ("propose", "check", "solve", "train")]
    for stage in ("eval_before", *stages, "eval_iter_002"):
        assert state["done"].count(stage) == 1, (stage, state["done"])
    ids = [r["id"] for r in _lines(run_dir / "iter_000" / "rollouts.jsonl")]
    assert len(ids) == len(set(ids)) == expected
    assert [r["id"] for r in _lines(run_dir / "iter_001" / "proposals.jsonl")] == [r["id"] for r in ahead]

    metrics = _lines(metrics_path)
    trains = {m["iteration"]: m for m in metrics if m["stage"] == "train"}
    assert trains[0]["staleness"] == {"0": expected + 2}, trains[0]  # sampled by the weights it trains
    for iteration in (1, 2):  # sampled by version i-1 while the learner held version i
        assert set(trains[iteration]["staleness"]) == {"1"} and trains[iteration]["trajectories"] >= 2, trains
    assert all("deferred" in trains[i]["sync"] for i in (0, 1)) and trains[2]["sync"]["version"] == 3, trains
    syncs = {m["iteration"]: m for m in metrics if m["stage"] == "sync"}
    # iteration 0's weights went into the engines if the rerun had started them (its share of iteration 1's
    # generation, depending on where the kill fell, may not need them: then they start on those weights);
    # iteration 1's went in once iteration 2's generation was done
    assert sorted(syncs) == [0, 1] and syncs[1]["version"] == 2, syncs
    assert syncs[0].get("version") == 1 or syncs[0].get("skipped") == "no engine running", syncs
    spans = {}
    for m in metrics:
        if m["stage"] == "timing":
            for name, began in m["began"].items():
                spans[(m["iteration"], name)] = (began, began + m["seconds"][name])
    train_1, propose_2, sync_1 = spans[(1, "train")], spans[(2, "propose")], spans[(1, "sync")]
    assert train_1[0] - 1.0 <= propose_2[0] < train_1[1], spans  # (1 s: the training thread's first line may lag)
    assert sync_1[0] >= max(train_1[1], spans[(2, "solve")][1]) - 0.01, spans


def test_ray_job_submit_runs_task_generation_on_a_cluster(tmp_path, heldout):
    port, dash, agent_http, agent_grpc, metrics, runtime_env = _free_ports(6)
    # A throwaway local cluster: no auth token (real clusters keep Ray's token auth; see the README).
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    temp = Path(tempfile.mkdtemp(prefix="scray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            f"--dashboard-port={dash}",
            "--num-cpus=2",
            "--include-dashboard=true",
            f"--temp-dir={temp}",
            # Every agent port explicit: the session's own Ray already holds the defaults (52365, ...), and an
            # agent that cannot bind leaves the cluster with "No available agent to submit job".
            f"--dashboard-agent-listen-port={agent_http}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=180,
    )
    try:
        run_dir = tmp_path / "jobrun"
        args = [a for a in _overrides(run_dir, heldout) if not a.startswith("ray.")]
        address = f"--address=http://127.0.0.1:{dash}"
        submit = [
            RAY,
            "job",
            "submit",
            address,
            f"--working-dir={ROOT}",
            "--",
            sys.executable,
            "ray_jobs/gen_tasks.py",
            *args,
        ]
        for _ in range(30):  # the job agent registers a little after `ray start` returns
            result = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=900)
            if "No available agent" not in result.stderr:
                break
            time.sleep(3)
        assert result.returncode == 0 and "succeeded" in result.stdout + result.stderr, (
            result.stdout[-4000:] + result.stderr[-2000:]
        )
        kept = [json.loads(line) for line in (run_dir / "iter_000" / "tasks_kept.jsonl").read_text().splitlines()]
        assert sorted(t["id"] for t in kept) == sorted(row["id"] for row in GOOD)
        assert "iter_0/check" in _state(run_dir)["done"]
    finally:
        _stop_cluster(str(temp))
        shutil.rmtree(temp, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _stop_cluster(temp_dir: str) -> None:
    """Stop only this test's Ray cluster (`ray stop` would stop every Ray on the machine)."""
    import psutil

    procs = [p for p in psutil.process_iter(["cmdline"]) if temp_dir in " ".join(p.info["cmdline"] or [])]
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _descendants_named(pid: int, name: str) -> list[int]:
    """Processes below `pid` whose command line holds `name` (Ray's actor processes are titled ray::<Class>)."""
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if name in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:  # a child that exited (or is a zombie) between the listing and the read
            continue
    return found


def test_engine_and_learner_actors_killed_mid_stage_stop_the_run_and_a_rerun_loses_nothing(tmp_path, heldout):
    """kill -9 of the rollout engine actor in the middle of the executor's episodes: the episodes it held are
    journaled as infra_error (never trained on), the solve stage stops the run (exit code 3) without marking
    itself done, and the rerun retries exactly those episodes: every episode once, none lost. Then kill -9 of the
    learner actor while it trains: the train stage stops the run the same way and the next run trains again."""
    run_dir = tmp_path / "run"
    args = _overrides(run_dir, heldout)
    rollouts = run_dir / "iter_000" / "rollouts.jsonl"
    expected = len(GOOD) * SAMPLES

    proc = _start(args, tmp_path / "run1.log")
    _wait_for(lambda: len(_lines(rollouts)) >= 3, proc, 900, tmp_path / "run1.log")
    engines = _descendants_named(proc.pid, "ray::RolloutEngine")
    assert engines, "no rollout engine process found below the driver"
    for pid in engines:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == 3, (tmp_path / "run1.log").read_text()[-4000:]
    log1 = (tmp_path / "run1.log").read_text()
    assert "iter_0/solve" in log1 and "rerun the same command" in log1, log1[-3000:]
    assert "iter_0/solve" not in _state(run_dir)["done"] and "iter_0/train" not in _state(run_dir)["done"]
    lost = [r["id"] for r in _lines(rollouts) if r["reason"] == "infra_error"]
    assert lost, "the kill cost no episode; the test proves nothing"

    # the rerun retries them; then kill -9 of the learner actor during the training step: the train stage stops
    # the run the same way, and the third run trains the iteration from the start
    proc = _start(args, tmp_path / "run2.log")
    _wait_for(lambda: "iter_0/solve" in _state(run_dir)["done"], proc, 900, tmp_path / "run2.log")
    _wait_for(lambda: _descendants_named(proc.pid, "ray::LearnerActor"), proc, 300, tmp_path / "run2.log")
    time.sleep(2)
    for pid in _descendants_named(proc.pid, "ray::LearnerActor"):
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == 3, (tmp_path / "run2.log").read_text()[-4000:]
    log2 = (tmp_path / "run2.log").read_text()
    assert "iter_0/train: a learner actor died" in log2, log2[-3000:]
    assert "iter_0/train" not in _state(run_dir)["done"]

    proc = _start(args, tmp_path / "run3.log")
    assert proc.wait(timeout=1200) == 0, (tmp_path / "run3.log").read_text()[-4000:]
    from selfchallenge.rollout.runner import Journal
    from selfchallenge.rollout.trajectory import load_trajectories

    final = Journal(str(rollouts)).records()
    assert len(final) == expected and all(r["reason"] != "infra_error" for r in final)
    trajectories = load_trajectories(str(run_dir / "iter_000" / "trajectories"))
    assert sorted(t.id for t in trajectories) == sorted(r["id"] for r in final)  # each episode once, lost ones too
    assert set(lost) <= {t.id for t in trajectories}
    assert _state(run_dir)["done"].count("iter_0/train") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting the small filesystem this test fills needs root")
def test_a_full_disk_in_the_run_dir_stops_the_run_and_a_rerun_loses_nothing(tmp_path, heldout):
    """The run dir's filesystem fills up in the middle of the executor's episodes: the run stops with a message
    naming the full disk (exit code 3), and once space is freed the same command resumes: every episode once."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(small)], check=True)
    try:
        run_dir = small / "run"
        args = _overrides(run_dir, heldout)
        rollouts = run_dir / "iter_000" / "rollouts.jsonl"
        proc = _start(args, tmp_path / "run1.log")
        _wait_for(lambda: len(_lines(rollouts)) >= 3, proc, 900, tmp_path / "run1.log")
        filler = small / "filler"
        with open(filler, "wb") as handle:  # take every free byte
            try:
                while True:
                    handle.write(b"\0" * (1 << 20))
                    handle.flush()
            except OSError:
                pass
        assert proc.wait(timeout=600) == 3, (tmp_path / "run1.log").read_text()[-4000:]
        log1 = (tmp_path / "run1.log").read_text()
        assert "No space left on device" in log1 and "rerun the same command" in log1, log1[-3000:]
        done_at_full = len(_lines(rollouts))
        assert done_at_full < len(GOOD) * SAMPLES, "the episodes finished before the disk filled"
        filler.unlink()

        proc = _start(args, tmp_path / "run2.log")
        assert proc.wait(timeout=1200) == 0, (tmp_path / "run2.log").read_text()[-4000:]
        from selfchallenge.rollout.runner import Journal
        from selfchallenge.rollout.trajectory import load_trajectories

        final = Journal(str(rollouts)).records()
        assert len(final) == len(GOOD) * SAMPLES and all(r["reason"] != "infra_error" for r in final)
        trajectories = load_trajectories(str(run_dir / "iter_000" / "trajectories"))
        assert sorted(t.id for t in trajectories) == sorted(r["id"] for r in final)
        assert _state(run_dir)["done"].count("iter_0/train") == 1
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
