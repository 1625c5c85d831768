"""A simulated multi-node cluster on this machine (`ray.cluster_utils.Cluster`). First a head node and two nodes that
offer the `sandbox` resource, as cluster.yaml's sandbox_cpu nodes do. With `sandbox.node_resource=sandbox` the
run's Runtime starts one sandbox pool on each sandbox node (none on the head), sessions spread over them and a
batch of checks is split between them, every verdict right. Then engines, learner ranks and sandbox pools placed
on the nodes that offer their resources, with weights crossing nodes by collective sync. Subprocesses, since the
test session holds its own Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import asyncio, json, ray
from ray.cluster_utils import Cluster
from selfchallenge.config import load_config
from selfchallenge.runtime import Runtime
from selfchallenge.tasks.record import load_tasks

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
sandbox_nodes = [cluster.add_node(num_cpus=1, resources={"sandbox": 1}).node_id for _ in range(2)]
cluster.wait_for_nodes()
cfg = load_config(None, [f"ray.address={cluster.address}", "sandbox.node_resource=sandbox", "sandbox.backend=docker",
                         "sandbox.num_workers=1", "sandbox.max_sessions=2"])
tasks = [t for t in load_tasks("examples/tasks_calculation.jsonl")]
with Runtime(cfg) as rt:
    infos = ray.get([actor.info.remote() for actor in rt.sandbox_actors])

    async def use():
        sandbox = rt.sandbox
        sessions = [await sandbox.open_session("calculation", {"domain": "trade_calculator"}) for _ in range(4)]
        outs = [await sandbox.session_exec(s, "print(convert_currency(10, 3))") for s in sessions]
        owners = [sandbox._owner[s] for s in sessions]
        for s in sessions:
            await sandbox.close_session(s)
        verdicts = await sandbox.check_many([t.sandbox_payload() for t in tasks], 5.0, 1)
        return outs, owners, verdicts

    outs, owners, verdicts = asyncio.run(use())
    after = ray.get([actor.info.remote() for actor in rt.sandbox_actors])
print("RESULT " + json.dumps({
    "head": cluster.head_node.node_id, "sandbox_nodes": sandbox_nodes, "pool_nodes": [i["node_id"] for i in infos],
    "session_stdout": [o["stdout"] for o in outs], "owners": owners,
    "reasons": [v["reason"] for v in verdicts],
    "expected": [t.provenance["expected_reason"] for t in tasks],
    "checks_per_pool": [i["checks"] for i in after],
}))
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_sandbox_pool_per_sandbox_node_and_work_spread_over_them():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT), RAY_AUTH_MODE="disabled")
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=540)  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, result.stdout[-2000:] + result.stderr[-4000:]
    out = json.loads(line[len("RESULT ") :])
    assert sorted(out["pool_nodes"]) == sorted(out["sandbox_nodes"]) and out["head"] not in out["pool_nodes"]
    assert all(s.strip() == "30" for s in out["session_stdout"]) and sorted(set(out["owners"])) == [0, 1]
    assert out["reasons"] == out["expected"] and all(n > 0 for n in out["checks_per_pool"]), out


PLACEMENT_SCRIPT = r"""
import json, ray
from ray.cluster_utils import Cluster
from selfchallenge.config import load_config
from selfchallenge.runtime import Runtime

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
trainer_nodes = [cluster.add_node(num_cpus=2, resources={"trainer": 2}).node_id for _ in range(2)]
sandbox_node = cluster.add_node(num_cpus=1, resources={"sandbox": 1}).node_id
cluster.wait_for_nodes()
cfg = load_config(None, [
    f"ray.address={cluster.address}", "run_dir=RUN_DIR",
    "engine.num_engines=2", "engine.node_resource=trainer", "engine.max_model_len=256", "engine.max_num_seqs=4",
    "engine.cpu_kvcache_space_gb=0.25", "engine.weight_sync=collective",
    "learner.num_learners=2", "learner.node_resource=trainer", "learner.zero_stage=3",
    "sandbox.node_resource=sandbox", "sandbox.backend=docker", "sandbox.num_workers=1", "sandbox.max_sessions=1",
])
with Runtime(cfg) as rt:
    engines = [ray.get(e.info.remote()) for e in rt.engines]
    learner = rt.learner.info
    pools = [ray.get(a.info.remote())["node_id"] for a in rt.sandbox_actors]
    sync = rt.sync_weights(1)
    again = rt.sync_weights(2)
    try:  # some engine is always on another node than learner rank 0 here: shared memory cannot reach it
        rt.learner.sync_weights(rt.engines, 3, strategy="shm")
        shm_error = ""
    except Exception as exc:
        shm_error = str(exc)
    versions = [ray.get(e.weight_version.remote()) for e in rt.engines]
print("RESULT " + json.dumps({
    "head": cluster.head_node.node_id, "trainer_nodes": trainer_nodes, "sandbox_node": sandbox_node,
    "engine_nodes": [e["node_id"] for e in engines], "learner_nodes": [i["node_id"] for i in learner],
    "pool_nodes": pools, "sync": sync, "again": again, "versions": versions, "shm_error": shm_error,
}))
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.docker
@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_engines_learner_and_sandboxes_are_placed_on_their_nodes_and_weights_cross_them(tmp_path):
    """A head, two nodes offering two units of the `trainer` resource each (standing for GPU nodes) and one `sandbox`
    node: two engines and a 2-rank ZeRO-3 learner land only on trainer nodes, within their capacity, the sandbox
    pool only on the sandbox node, nothing on the head; a collective weight sync (gloo, learner rank 0 to both
    engines' workers, the ZeRO-3 gathers across nodes) then reaches every engine, twice over the same group."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT), RAY_AUTH_MODE="disabled")
    script = PLACEMENT_SCRIPT.replace("RUN_DIR", str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=840)  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, result.stdout[-2000:] + result.stderr[-4000:]
    out = json.loads(line[len("RESULT ") :])
    trainer = set(out["trainer_nodes"])
    assert set(out["engine_nodes"]) <= trainer and len(out["engine_nodes"]) == 2, out
    assert set(out["learner_nodes"]) <= trainer and len(out["learner_nodes"]) == 2, out
    # 4 units asked of 2 nodes x 2 `trainer`: each node holds exactly two (the learner's ranks then span both nodes)
    assert sorted(Counter(out["engine_nodes"] + out["learner_nodes"]).values()) == [2, 2], out
    assert out["pool_nodes"] == [out["sandbox_node"]], out
    assert out["head"] not in out["engine_nodes"] + out["learner_nodes"] + out["pool_nodes"]
    for sync, version in ((out["sync"], 1), (out["again"], 2)):
        assert sync["strategy"] == "collective" and sync["engines"] == 2 and sync["version"] == version, sync
    assert out["again"]["connect_s"] < 1.0, out["again"]  # the group is built once
    assert out["versions"] == [2, 2]
    assert "run on another node" in out["shm_error"] and "engine.weight_sync=collective" in out["shm_error"], out
