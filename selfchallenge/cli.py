"""`selfchallenge` command line. Each subcommand is a thin wrapper over a library function; heavy imports happen
inside the handlers so `selfchallenge --help` stays instant.

  run [CONFIG] [key=value ...]       the self-challenging loop (local Ray, or --address to join a cluster)
  gen-tasks [CONFIG] [key=value ...] challenger + filter only (writes kept tasks)
  eval [CONFIG] [key=value ...]      evaluate a model on the configured benchmark / held-out tasks
  check IN.jsonl --out OUT.jsonl [--data-root DIR]   check Code-as-Task records, print the yield funnel
  env exec|replay|list               run a program in a sandboxed environment; replay tau-bench gold actions
  model tiny|warmstart               build the tiny local model; warm-start it on generated transcripts
  demo [CONFIG] [--seeds 0 1 2]      warm start + loop + held-out before/after (the learning demonstration)
  config show [CONFIG] [key=value]   print the resolved config
  report RUN_DIR                     (re)build the HTML report of a run

Quiet by default: the terminal shows the project's progress; vLLM, Ray and DeepSpeed logs (driver and actors) go
to <run_dir>/logs/ (<out_dir>/logs/ for `model warmstart`). -v/--verbose shows them on the terminal instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys

from .config import ConfigError

VERBOSE_HELP = "show vLLM, Ray and DeepSpeed logs on the terminal (default: only in <run_dir>/logs/)"


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """`-v/--verbose` after the subcommand too; SUPPRESS keeps a subparser from resetting the top-level flag."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None, help="YAML config (default: built-in defaults)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. learner.lr=1e-5")


def _split_config(args) -> tuple[str | None, list[str]]:
    """Allow `run key=value` without a config file: a first positional containing '=' is an override."""
    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)
        config = None
    return config, overrides


def _load(args):
    from .config import load_config

    config, overrides = _split_config(args)
    if getattr(args, "address", None):
        overrides.append(f"ray.address={args.address}")
    if getattr(args, "run_dir", None):
        overrides.append(f"run_dir={args.run_dir}")
    return load_config(config, overrides)


def cmd_run(args) -> int:
    from .pipeline import run_pipeline

    run_pipeline(_load(args), stages=("propose", "check", "solve", "train", "eval"))
    return 0


def cmd_gen_tasks(args) -> int:
    from .pipeline import run_pipeline

    run_pipeline(_load(args), stages=("propose", "check"))
    return 0


def cmd_eval(args) -> int:
    from .pipeline import run_evaluation_only

    run_evaluation_only(_load(args), model_path=args.model)
    return 0


def _dry_run(args) -> int:
    """`--dry-run` of run, gen-tasks and eval: the pre-flight instead of the command."""
    from .preflight import print_preflight

    return print_preflight(_load(args))


def cmd_check(args) -> int:
    from .tasks.check import check_file

    roots = list(args.data_root)
    if args.config:
        from .config import load_config
        from .runtime import data_dirs

        roots += data_dirs(load_config(args.config))
    return check_file(
        args.input, args.out, backend=args.backend, workers=args.workers, timeout_s=args.timeout, data_roots=roots
    )


def cmd_env_exec(args) -> int:
    from .sandbox.client import run_program

    try:
        env_config = json.loads(args.env_config) if args.env_config else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--env-config is not valid JSON ({exc.msg}); example: --env-config '{{\"seed\": 1}}'"
        ) from None
    with open(args.code, encoding="utf-8") as handle:
        code = handle.read()
    result = run_program(
        args.env, env_config, code, backend=args.backend, timeout_s=args.timeout, return_state=args.state
    )
    print(json.dumps(result))
    return 0 if result.get("status") != "infra_error" else 2


def cmd_env_replay(args) -> int:
    from .envs.replay import replay_tasks

    with open(args.tasks, encoding="utf-8") as handle:
        tasks = json.load(handle)
    if not isinstance(tasks, list):
        raise ConfigError(f"{args.tasks}: expected a JSON list of tasks with 'actions'")
    for row in replay_tasks(args.env, {"data_dir": args.data_dir} if args.data_dir else {}, tasks):
        print(json.dumps(row))
    return 0


def cmd_env_list(args) -> int:
    from .envs import ENV_NAMES, make_env

    for name in ENV_NAMES:
        env = make_env(name, {})
        print(f"{name}: {len(env.tool_specs())} tools: {', '.join(s['function']['name'] for s in env.tool_specs())}")
    return 0


def cmd_model_tiny(args) -> int:
    from .rollout.tiny_model import build_tiny_model

    path = build_tiny_model(
        args.out_dir,
        hidden_size=args.hidden_size,
        layers=args.layers,
        heads=args.heads,
        vocab_size=args.vocab_size,
        seed=args.seed,
    )
    print(path)
    return 0


def cmd_model_warmstart(args) -> int:
    from .warmstart.recipe import load_options, warmstart

    config, overrides = _split_config(args)
    if args.envs:
        overrides.append(f"warmstart.envs=[{','.join(args.envs)}]")
    options, run_cfg = load_options(overrides, config)
    print(warmstart(options, args.out_dir, run_cfg))
    return 0


def cmd_config_show(args) -> int:
    from .config import to_yaml

    print(to_yaml(_load(args)), end="")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    config, overrides = _split_config(args)
    run_demo(config, overrides, list(args.seeds), args.out)
    return 0


def cmd_report(args) -> int:
    from .report import format_table, summary_rows, write_report

    print(write_report(args.run_dir))
    print(format_table(summary_rows(args.run_dir)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfchallenge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    for name, handler, help_text in (
        ("run", cmd_run, "run the self-challenging loop"),
        ("gen-tasks", cmd_gen_tasks, "generate and filter tasks only"),
        ("eval", cmd_eval, "evaluate a model on the configured tasks"),
    ):
        p = sub.add_parser(name, help=help_text)
        _add_config_args(p)
        _add_verbose(p)
        p.add_argument("--address", default=None, help="join a Ray cluster (e.g. auto) instead of starting one")
        p.add_argument("--run-dir", default=None, help="shortcut for run_dir=...")
        p.add_argument("--dry-run", action="store_true", help="check what the run needs (model, run dir, sandbox, "
                       "resources) and exit; starts nothing")  # fmt: skip
        if name == "eval":
            p.add_argument("--model", default=None, help="model folder to evaluate (default: the run's latest)")
        p.set_defaults(func=handler)

    p = sub.add_parser("check", help="check Code-as-Task records in the sandbox")
    p.add_argument("input", help="JSONL of task records (or a saved dataset folder)")
    p.add_argument("--out", required=True, help="JSONL of verdicts, one per input record")
    p.add_argument("--backend", default="auto", choices=["auto", "docker", "bwrap"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per program")
    p.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder the sandbox may mount read-only (repeatable); a record whose env_config.data_dir is not "
        "under one is rejected (data_dir_not_allowed), never mounted",
    )
    p.add_argument("--config", default=None, help="also allow the data roots of this run config (envs, eval, sandbox)")
    p.set_defaults(func=cmd_check)

    env = sub.add_parser("env", help="environments").add_subparsers(dest="env_command", required=True)
    p = env.add_parser("exec", help="run one program in a fresh sandboxed environment")
    p.add_argument("--env", required=True)
    p.add_argument("--env-config", default="", help='JSON object, e.g. \'{"domain": "trade_calculator"}\'')
    p.add_argument("--code", required=True, help="Python file to run")
    p.add_argument("--backend", default="auto", choices=["auto", "docker", "bwrap"])
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--state", action="store_true", help="include the final state in the output")
    p.set_defaults(func=cmd_env_exec)
    p = env.add_parser("replay", help="replay tau-bench tasks' gold actions and print database hashes")
    p.add_argument("--env", required=True, choices=["retail", "airline"])
    p.add_argument("--data-dir", default=None, help="tau-bench data folder (default: the generated world)")
    p.add_argument("--tasks", required=True, help="JSON list of tasks with 'actions': [{name, kwargs}]")
    p.set_defaults(func=cmd_env_replay)
    p = env.add_parser("list", help="list environments and their tools")
    p.set_defaults(func=cmd_env_list)

    model = sub.add_parser("model", help="models").add_subparsers(dest="model_command", required=True)
    p = model.add_parser("tiny", help="build the tiny local model (tokenizer + random Llama)")
    p.add_argument("out_dir")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_model_tiny)
    p = model.add_parser("warmstart", help="fine-tune the tiny model on generated challenger/executor transcripts")
    _add_config_args(p)
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--envs", nargs="+", default=None, help="environments to warm-start (default: every one of the run config)"
    )
    _add_verbose(p)
    p.set_defaults(func=cmd_model_warmstart)

    p = sub.add_parser("config", help="configs").add_subparsers(dest="config_command", required=True)
    show = p.add_parser("show", help="print the resolved config")
    _add_config_args(show)
    show.set_defaults(func=cmd_config_show)

    p = sub.add_parser("demo", help="warm-started tiny model -> self-challenging loop -> held-out before/after")
    _add_config_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default="runs/demo", help="one folder per seed (model, run) and summary.json")
    _add_verbose(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="(re)build a run's HTML report")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)
    return parser


def describe_os_error(exc: OSError) -> str:
    """An OSError as a line a user can act on: `strerror: filename` when the OS filled them in, else the message
    the raiser wrote (an error raised as `FileNotFoundError("...")` has no strerror or filename)."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (`--out-dir D learner.lr=1e-4`)
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from . import logs
    from .rollout.runner import StageIncomplete

    if args.verbose:
        logs.set_verbose()
    logs.forget_last_dir()
    try:
        return _dry_run(args) if getattr(args, "dry_run", False) else args.func(args)
    except StageIncomplete as exc:
        print(f"selfchallenge: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"selfchallenge: config error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"selfchallenge: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"selfchallenge: {describe_os_error(exc)}: free some space (where the run dir is, or Ray's and the "
              "sandbox's temp folders) and rerun the same command to resume (finished work is journaled)",
              file=sys.stderr)  # fmt: skip
        return 3
    except KeyboardInterrupt:
        print("selfchallenge: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception:
        if logs.last_dir():  # a quiet run: the actors' tracebacks and vLLM/Ray/DeepSpeed messages are in the files
            print(f"selfchallenge: failed; vLLM, Ray and DeepSpeed logs are in {logs.last_dir()}/", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
