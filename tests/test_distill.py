"""mode=distill end to end: the teacher's engines write and solve the tasks, the student learns by SFT on the
teacher's token ids; and a teacher with another tokenizer is refused before anything starts.

Teacher and student are separately built tiny models with the same tokenizer (build_tiny_model: the tokenizer
depends only on the corpus, the weights on the seed), so the test can tell whose weights sampled each token.
The run also exercises challenger.filter=solution_passes: the seed tasks include a lenient verifier and a task
without failure cases, which that mode sends to the executor and the paper's full filter would drop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from selfchallenge.config import ConfigError, load_config
from selfchallenge.learner.distill import require_same_tokenizer

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "tasks_calculation.jsonl"
SAMPLES = 2


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_model_dir) -> str:
    from selfchallenge.rollout.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("teacher")), seed=1)


def _overrides(run_dir: Path, student: str, teacher: str) -> list[str]:
    return [
        f"run_dir={run_dir}",
        "mode=distill",
        f"model.path={student}",
        f"model.teacher_path={teacher}",
        "envs=[{name: calculation, env_config: {domain: trade_calculator}}]",
        f"challenger.seed_tasks={EXAMPLES}",
        "challenger.tasks_per_iteration=1",
        "challenger.explore_turns=1",
        "challenger.max_tokens=32",
        "challenger.sampling.max_tokens=16",
        "challenger.filter=solution_passes",
        f"executor.samples_per_task={SAMPLES}",
        "executor.max_turns=2",
        "executor.concurrency=4",
        "executor.sampling.max_tokens=16",
        "executor.sampling.temperature=0.8",
        "learner.algorithm=sft",
        "learner.failure_weight=1.0",  # the paper's distillation also learns from the teacher's failures
        "learner.lr=1e-3",
        "learner.epochs=2",
        "engine.max_model_len=4096",
        "engine.cpu_kvcache_space_gb=0.25",
    ]


def test_a_teacher_with_another_tokenizer_is_refused_naming_both_paths(tmp_path, tiny_model_dir, word_llama):
    from selfchallenge.runtime import Runtime

    other = word_llama(str(tmp_path / "word_llama"), 64, 64)
    with pytest.raises(ConfigError) as info:
        require_same_tokenizer(other, tiny_model_dir)
    assert other in str(info.value) and tiny_model_dir in str(info.value)
    assert "model.teacher_path" in str(info.value) and "vocabulary sizes" in str(info.value)
    # the run refuses it before starting Ray, engines or the sandbox
    cfg = load_config(None, _overrides(tmp_path / "run", tiny_model_dir, other))
    with pytest.raises(ConfigError, match="differs from the student's"):
        Runtime(cfg)


def _logprobs_under(model_dir: str, trajectory) -> list[float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([trajectory.prompt_ids + trajectory.response_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double() / trajectory.temperature, dim=-1)
    start = len(trajectory.prompt_ids)
    return [
        logp[start + j - 1, token].item()
        for j, (token, m) in enumerate(zip(trajectory.response_ids, trajectory.loss_mask, strict=True))
        if m
    ]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_distill_mode_end_to_end(tmp_path, ray_local, tiny_model_dir, teacher_dir):
    from safetensors.torch import load_file

    from selfchallenge.pipeline import run_pipeline
    from selfchallenge.rollout.trajectory import load_trajectories
    from selfchallenge.tasks.record import load_tasks

    require_same_tokenizer(teacher_dir, tiny_model_dir)  # same tokenizer, other weights
    run_dir = tmp_path / "run"
    cfg = load_config(None, _overrides(run_dir, tiny_model_dir, teacher_dir))
    run_pipeline(cfg, stages=("propose", "check", "solve", "train"))

    state = json.loads((run_dir / "state.json").read_text())
    assert state["done"] == [f"iter_0/{s}" for s in ("propose", "check", "solve", "train")]
    iteration = run_dir / "iter_000"
    # the teacher wrote the task proposals
    proposals = [json.loads(line) for line in (iteration / "proposals.jsonl").read_text().splitlines()]
    written = [p for p in proposals if not p["id"].startswith("seed/")]
    assert len(written) == 1 and written[0]["trajectory"]["temperature"] == 1.0
    assert all(p["task"]["provenance"]["model"] == teacher_dir for p in written if p["task"])

    # challenger.filter=solution_passes: the lenient verifier and the task without failure cases go through too
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    funnel = next(m for m in metrics if m["stage"] == "check")["funnel"]
    assert funnel["filter"] == "solution_passes" and funnel["decided_by"] == "solution_passes"
    assert funnel["kept"] == funnel["solution_passes"] > funnel["failures_fail"]
    kept = {t.id for t in load_tasks(str(iteration / "tasks_kept"))}
    assert {"example-calculation-lenient_verifier", "example-calculation-no_failure_cases"} <= kept
    assert "example-calculation-infeasible_solution" not in kept

    # the teacher's engines sampled every executor token: the stored logprobs are the teacher's, not the student's
    trajectories = load_trajectories(str(iteration / "trajectories"))
    assert len(trajectories) == SAMPLES * len(kept)
    assert all(t.temperature == 0.8 and t.weight_version == 0 for t in trajectories)
    sample = max(trajectories, key=lambda t: t.num_sampled_tokens)
    stored = [lp for lp, m in zip(sample.logprobs, sample.loss_mask, strict=True) if m]
    assert stored == pytest.approx(_logprobs_under(teacher_dir, sample), abs=1e-4)
    assert stored != pytest.approx(_logprobs_under(tiny_model_dir, sample), abs=1e-2)

    # the student learned from them by SFT (two epochs: its NLL fell), and only the student's weights moved
    train = next(m for m in metrics if m["stage"] == "train")
    sampled = [t for t in trajectories if t.num_sampled_tokens > 0]  # an over-long prompt leaves nothing to learn
    assert len(sampled) >= len(trajectories) / 2
    assert train["trajectories"] == len(trajectories) and train["sequences_trained"] == 2 * len(sampled)
    assert train["last_loss"] < train["first_loss"]
    assert train["sync"] == {"skipped": "no engine running"}  # no student engine was needed
    exported = Path(state["models"]["0"]["hf"])
    assert (exported / "tokenizer.json").exists()
    after = load_file(str(next(exported.glob("*.safetensors"))))
    student = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    teacher = load_file(str(next(Path(teacher_dir).glob("*.safetensors"))))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(after[name], student[name]) and not torch.equal(after[name], teacher[name])
    assert (after[name] - student[name]).abs().max() < (after[name] - teacher[name]).abs().max()
