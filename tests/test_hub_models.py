"""model.path as a Hugging Face hub id: the README's cluster command (`model.path=meta-llama/...`) passes the
config, and the learner starts, the engine's pre-flight check reads the model and the tokenizer loads, all from a
stub hub cache holding the tiny model under that id (HF_HUB_OFFLINE=1: nothing is fetched). A subprocess,
because huggingface_hub reads its cache and offline settings when first imported."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"

PROBE = r"""
import json, sys
from selfchallenge.config import load_config
from selfchallenge.learner.actor import LearnerActor
from selfchallenge.model_source import resolve_model
from selfchallenge.rollout.engine import check_model_for_engine
from transformers import AutoTokenizer

config, overrides = sys.argv[1], sys.argv[2:]
cfg = load_config(config, overrides)
out = {"model_path": cfg.model.path, "folder": resolve_model(cfg.model.path)}
out["engine_check"] = check_model_for_engine(cfg.model.path, on_gpu=False).get("model_type")
out["tokenizer"] = len(AutoTokenizer.from_pretrained(cfg.model.path))
learner = LearnerActor(cfg.learner, cfg.model.path, total_steps=10)
out["learner"] = learner.setup()
out["zero_stage"] = cfg.learner.zero_stage
import os, tempfile
exported = learner.export_hf(tempfile.mkdtemp())
out["exported_tokenizer"] = os.path.exists(os.path.join(exported, "tokenizer_config.json"))
try:
    resolve_model("nobody/not-cached")
except FileNotFoundError as exc:
    out["missing"] = str(exc)
print("RESULT " + json.dumps(out, default=str))
"""


def _readme_cluster_command() -> tuple[str, list[str]]:
    """(config, key=value overrides) of the README's `ray job submit` example."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"ray job submit --address.*?\n```", text, re.DOTALL).group(0).replace("\\\n", " ")
    words = shlex.split(block.split("\n```")[0])
    config = words[words.index("--config") + 1]
    return config, [w for w in words if "=" in w and not w.startswith("-")]


def _stub_hub(tmp_path: Path, tiny_model_dir: str, hub_id: str) -> tuple[Path, dict]:
    """A Hugging Face cache holding the tiny model under `hub_id`, and the environment that uses it offline."""
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return repo, env


def test_the_readme_cluster_command_with_a_hub_id_starts_the_learner_from_the_hub_cache(tmp_path, tiny_model_dir):
    config, overrides = _readme_cluster_command()
    hub_id = next(w.split("=", 1)[1] for w in overrides if w.startswith("model.path="))
    assert "/" in hub_id and not os.path.exists(hub_id)
    repo, env = _stub_hub(tmp_path, tiny_model_dir, hub_id)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, config, *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert result.returncode == 0 and line, result.stdout[-2000:] + result.stderr[-4000:]
    out = json.loads(line[len("RESULT ") :])
    assert out["model_path"] == hub_id and out["folder"] == str(repo / "snapshots" / REVISION)
    assert out["engine_check"] == "llama" and out["tokenizer"] > 0
    assert out["zero_stage"] == 3 and out["learner"]  # the learner built its DeepSpeed engine on the cached model
    assert out["exported_tokenizer"]  # the exported model (what the engines load next) carries the hub tokenizer
    assert "huggingface-cli download nobody/not-cached" in out["missing"]


def test_the_readme_cluster_command_passes_its_dry_run_and_a_missing_model_fails_it(tmp_path, tiny_model_dir):
    """`python ray_jobs/train.py --dry-run` with the README's arguments, run_dir pointed at a shared path; then the
    same with a hub id the offline cache lacks, which must fail naming model.path and the fix."""
    config, overrides = _readme_cluster_command()
    hub_id = next(w.split("=", 1)[1] for w in overrides if w.startswith("model.path="))
    repo, env = _stub_hub(tmp_path, tiny_model_dir, hub_id)
    shared = tmp_path / "shared"
    shared.mkdir()
    args = [w if not w.startswith("run_dir=") else f"run_dir={shared}/runs/exp1" for w in overrides]
    command = [sys.executable, "ray_jobs/train.py", "--dry-run", "--config", config]
    ready = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ready.returncode == 0 and "dry run: ready" in ready.stdout, ready.stdout + ready.stderr[-3000:]
    assert str(repo / "snapshots" / REVISION) in ready.stdout and f"{shared}/runs/exp1 will be created" in ready.stdout
    assert not (shared / "runs").exists()  # nothing was written
    missing = [w if not w.startswith("model.path=") else "model.path=nobody/not-cached" for w in args]
    failed = subprocess.run([*command, *missing], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and "not ready: model" in failed.stdout, failed.stdout + failed.stderr[-3000:]
    assert "huggingface-cli download nobody/not-cached" in failed.stdout
