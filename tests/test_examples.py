"""The shipped example tasks get exactly the verdicts they were written to demonstrate, through the real CLI
and the Docker sandbox; `env exec` runs a program in every environment."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("tasks_*.jsonl"))


def _cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "selfchallenge.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_examples_cover_every_environment():
    assert {p.stem.removeprefix("tasks_") for p in EXAMPLES} == {"calculation", "web_browsing", "retail", "airline"}


def test_check_cli_gives_each_example_its_expected_verdict(tmp_path):
    merged = tmp_path / "all.jsonl"
    rows = [json.loads(line) for path in EXAMPLES for line in path.read_text().splitlines()]
    merged.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "verdicts.jsonl"
    result = _cli("check", str(merged), "--out", str(out), "--backend", "docker")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verifier runs" in result.stdout and "kept" in result.stdout
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [row["id"] for row in rows]
    got = {v["id"]: v["reason"] for v in verdicts}
    want = {row["id"]: row["provenance"]["expected_reason"] for row in rows}
    assert got == want
    assert all(v["timings"]["total_s"] > 0 for v in verdicts)


@pytest.mark.parametrize(
    "env, env_config, code, expect",
    [
        ("calculation", {"domain": "trade_calculator"}, "answer = convert_currency(10, 2.5)", 25.0),
        ("web_browsing", {}, "answer = 'Products' in click_url('/products') + view()", True),
        ("retail", {}, "answer = find_user_id_by_email('kenji.suzuki1589@example.com')", "kenji_suzuki_5603"),
        ("airline", {}, "import json\nanswer = json.loads(get_reservation_details('2KSA48'))['origin']", "ATL"),
    ],
)
def test_env_exec_runs_a_program_in_every_environment(tmp_path, env, env_config, code, expect):
    program = tmp_path / "p.py"
    program.write_text(code)
    result = _cli(
        "env",
        "exec",
        "--env",
        env,
        "--env-config",
        json.dumps(env_config),
        "--code",
        str(program),
        "--backend",
        "docker",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["status"] == "ok" and out["answer"] == expect, out
    assert len(out["state_hash"]) == 64 and out["elapsed_s"] > 0


def test_cli_errors_show_their_message_not_none(tmp_path, capsys, shared_data):
    from selfchallenge.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    tasks = shared_data / "taubench" / "retail" / "tasks_dev.json"
    # a FileNotFoundError raised with a message (no strerror / filename): the message is what the user sees
    assert main(["env", "replay", "--env", "retail", "--data-dir", str(empty), "--tasks", str(tasks)]) == 2
    err = capsys.readouterr().err
    assert "lacks the tau-bench retail files" in err and "None" not in err, err
    # one the OS raised: its reason and the file
    assert main(["env", "replay", "--env", "retail", "--tasks", str(tmp_path / "missing.json")]) == 2
    assert "No such file or directory: " + str(tmp_path / "missing.json") in capsys.readouterr().err
    # tau-bench tasks evaluated in a folder without the database: the error names the key and the fix
    copied = empty / "tasks_dev.json"
    copied.write_text(tasks.read_text())
    assert main(["eval", f"eval.taubench_tasks.retail={copied}", f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "eval.taubench_tasks.retail" in err and "data_dir" in err and "None" not in err, err
