"""Quiet by default: the terminal shows the project's own progress, third-party logs go to `<run_dir>/logs/`.

A run's terminal holds only the project's lines (`[stage]` lines, progress bars, the yield funnel, the summary
table, `selfchallenge.*` log records). Everything vLLM, Ray, DeepSpeed, torch, transformers and the like log or
print goes to files in the run's log folder (`<run_dir>/logs/`; `<out_dir>/logs/` for `model warmstart`):

  driver.log               third-party log records of the driver process (and the project's own records too)
  engine-<pid>.log         a RolloutEngine actor's stdout/stderr, vLLM's EngineCore and worker processes included
  learner-rank<r>.log      a LearnerActor's stdout/stderr (DeepSpeed, torch)
  sandbox.log              the SandboxPoolActor's stdout/stderr

Errors stay visible: third-party records at ERROR and above still reach the terminal, Ray still prints dead-worker
messages and raises actor exceptions in the driver, and the CLI names the log folder when a command fails.
`--verbose` (or SELFCHALLENGE_VERBOSE=1) restores today's behaviour: every log on the terminal, actor output
forwarded by Ray (`log_to_driver=True`), no files.

How: the driver attaches a file handler and filters the terminal handlers (`setup`); actors get the log folder in
their runtime_env (`actor_runtime_env`) and call `redirect_actor_output` in `__init__`, which points the process's
file descriptors 1 and 2 at their file, so child processes they start (vLLM's EngineCore) write there as well.
Output an actor prints before its `__init__` runs stays in Ray's own session logs (/tmp/ray/session_latest/logs).
"""

from __future__ import annotations

import logging
import os
import sys
import time

LOG_DIR_ENV = "SELFCHALLENGE_LOG_DIR"  # in an actor: the folder its output goes to (unset: Ray's worker logs)
VERBOSE_ENV = "SELFCHALLENGE_VERBOSE"  # "1": third-party logs on the terminal (what the CLI's --verbose sets)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROJECT = ("selfchallenge", "__main__")

_state: dict = {"dir": None, "file": None}


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool = True) -> None:
    """Set by the CLI's --verbose; an environment variable, so library calls and child processes see it."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def log_dir() -> str | None:
    """The driver's current log folder; None when verbose or before `setup`."""
    return _state["dir"]


def _is_project(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in PROJECT)


class _ProjectOrErrors(logging.Filter):
    """On a terminal handler: the project's records at any level, everyone else's only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _is_project(record.name) or record.levelno >= logging.ERROR


_FILTER = _ProjectOrErrors()
_CONSOLE = "selfchallenge-console"
_FILE = "selfchallenge-file"


class _ToFile(logging.Handler):
    """Attached to a library's own logger: hands its records to the driver's file handler. A separate object, so a
    library that restyles its logger's handlers (ray.init does) does not restyle the file."""

    def __init__(self, target: logging.Handler):
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def _terminal_handler(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def setup(folder: str | None) -> str | None:
    """Configure the driver's logging for one run; returns the log folder (None when verbose or no folder).

    The project's records go to the terminal at INFO as before. When quiet, the root logger also writes every
    record to `<folder>/driver.log`, third-party records below ERROR stay off the terminal, and library progress
    bars (Hugging Face) are turned off. Safe to call again for another folder (the demo: warm start, then the run).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in (_CONSOLE, _FILE):
            root.removeHandler(handler)
            handler.close()
    for item in list(logging.Logger.manager.loggerDict.values()):  # a previous setup's file, on library loggers
        for handler in list(getattr(item, "handlers", [])):
            if isinstance(handler, _ToFile):
                item.removeHandler(handler)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.set_name(_CONSOLE)
    console.setFormatter(logging.Formatter(FORMAT))
    _state["dir"] = _state["file"] = None
    if verbose() or folder is None:
        root.addHandler(console)
        return None
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    console.addFilter(_FILTER)
    root.addHandler(console)
    for handler in root.handlers:  # e.g. a basicConfig handler installed before us
        if handler is not console and _terminal_handler(handler) and _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    file_handler = logging.FileHandler(os.path.join(folder, "driver.log"), encoding="utf-8")
    file_handler.set_name(_FILE)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    logging.captureWarnings(True)  # Python warnings (FutureWarning, ...) become py.warnings records: to the file
    _state.update(dir=folder, file=file_handler)
    _quiet_progress_bars()
    tame()
    print(f"[logs] vLLM, Ray and DeepSpeed logs go to {folder}/ (--verbose shows them here)", flush=True)
    return folder


def tame() -> None:
    """Apply the quiet rule to loggers that libraries configured themselves (own terminal handler, no propagation:
    vLLM, Ray, DeepSpeed, transformers): their terminal handlers get the ERROR-only filter, the file gets their
    records. Libraries configure those at import time, so the driver calls this again after importing them (after
    ray import, after the engines and the learner start). Does nothing when not quiet."""
    file_handler = _state["file"]
    if file_handler is None:
        return
    for name, item in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(item, logging.Logger) or _is_project(name):
            continue
        for handler in item.handlers:
            if _terminal_handler(handler) and _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
        if item.handlers and not item.propagate:
            if not any(isinstance(h, _ToFile) and h.target is file_handler for h in item.handlers):
                item.addHandler(_ToFile(file_handler))


def _quiet_progress_bars() -> None:
    try:
        import huggingface_hub.utils

        huggingface_hub.utils.disable_progress_bars()
    except Exception:  # noqa: BLE001 - optional: only progress bars
        pass
    hf_logging = sys.modules.get("transformers.utils.logging")  # read its switch at import: flip it if imported
    if hf_logging is not None:
        hf_logging.disable_progress_bar()


def actor_runtime_env(env_vars: dict[str, str] | None = None) -> dict | None:
    """The runtime_env for an actor the driver starts: `env_vars` plus the log folder when quiet (None if empty).
    Ray merges it with the job's runtime_env (env_vars are merged key by key)."""
    merged = dict(env_vars or {})
    if _state["dir"]:
        merged[LOG_DIR_ENV] = _state["dir"]
    return {"env_vars": merged} if merged else None


def redirect_actor_output(name: str) -> str | None:
    """In an actor's `__init__`: send this process's stdout/stderr (file descriptors 1 and 2, so C++ logs and any
    child process too) to `<log folder>/<name>.log`. Returns the path; None (nothing changed) when the driver is
    verbose or the folder cannot be written on this node (output then stays in Ray's worker logs)."""
    folder = os.environ.get(LOG_DIR_ENV)
    if not folder:
        return None
    path = os.path.join(folder, f"{name}.log")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return None
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream: nothing to flush
            pass
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(1, f"===== {name} (pid {os.getpid()}) {stamp}\n".encode())
    return path
