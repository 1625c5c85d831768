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

How: the driver attaches a file handler and filters the terminal handlers (`scope`); actors get the log folder in
their runtime_env (`actor_runtime_env`) and call `redirect_actor_output` in `__init__`, which points the process's
file descriptors 1 and 2 at their file, so child processes they start (vLLM's EngineCore) write there as well.
Output an actor prints before its `__init__` runs stays in Ray's own session logs (/tmp/ray/session_latest/logs).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import time

LOG_DIR_ENV = "SELFCHALLENGE_LOG_DIR"  # in an actor: the folder its output goes to (unset: Ray's worker logs)
VERBOSE_ENV = "SELFCHALLENGE_VERBOSE"  # "1": third-party logs on the terminal (what the CLI's --verbose sets)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROJECT = ("selfchallenge", "__main__")

_state: dict = {"dir": None, "file": None, "last": None, "bars": (), "root_level": logging.WARNING}


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool = True) -> None:
    """Set by the CLI's --verbose; an environment variable, so library calls and child processes see it."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def log_dir() -> str | None:
    """The driver's current log folder: set inside a quiet `scope`, else None."""
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
    """A handler writing to the terminal: to stdout or stderr (not a file, not e.g. pytest's capture buffers)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    if any(stream is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)):
        return True
    try:
        return stream.fileno() in (1, 2)
    except Exception:  # noqa: BLE001 - no file descriptor: an in-memory buffer
        return False


@contextlib.contextmanager
def scope(folder: str | None):
    """Driver logging for one command (a run, an evaluation, a warm start); yields the log folder (None when verbose
    or `folder` is None). Inside, the project's records go to the terminal at INFO. When quiet, the root logger also
    writes every record to `<folder>/driver.log`, third-party records below ERROR stay off the terminal, Hugging
    Face progress bars are off, and actors started through `actor_runtime_env` write to the folder. On exit the
    process's logging is as before (a previous scope's folder again), so library callers and test sessions are
    not left redirected; `last_dir()` still names the folder for an error message."""
    previous = _state["dir"]
    _install(folder)
    try:
        yield _state["dir"]
    finally:
        _uninstall()
        if previous:
            _install(previous, announce=False)


def last_dir() -> str | None:
    """The folder of the latest quiet scope, also after it ended (the CLI names it when a command fails)."""
    return _state["last"]


def forget_last_dir() -> None:
    _state["last"] = None


def _install(folder: str | None, announce: bool = True) -> None:
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.set_name(_CONSOLE)
    console.setFormatter(logging.Formatter(FORMAT))
    _state["root_level"] = root.level
    root.setLevel(logging.INFO)
    if verbose() or folder is None:
        root.addHandler(console)
        return
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    root.addHandler(console)
    for handler in root.handlers:  # ours, and e.g. a basicConfig handler installed before us
        if _terminal_handler(handler) and _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    file_handler = logging.FileHandler(os.path.join(folder, "driver.log"), encoding="utf-8")
    file_handler.set_name(_FILE)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    logging.captureWarnings(True)  # Python warnings (FutureWarning, ...) become py.warnings records: to the file
    _state.update(dir=folder, file=file_handler, last=folder)
    _state["bars"] = _progress_bars(False)
    tame()
    if announce:
        print(f"[logs] vLLM, Ray and DeepSpeed logs go to {folder}/ (--verbose shows them here)", flush=True)


def _uninstall() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in (_CONSOLE, _FILE):
            root.removeHandler(handler)
            handler.close()
    for item in [root, *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(item, "handlers", [])):
            if isinstance(handler, _ToFile):
                item.removeHandler(handler)
            elif _FILTER in handler.filters:
                handler.removeFilter(_FILTER)
    if _state["file"] is not None:
        logging.captureWarnings(False)
        bars = _state["bars"]  # transformers copies the hub's switch when imported: undo it there too
        _progress_bars(True, only=bars + (("transformers",) if "hub" in bars else ()))
    root.setLevel(_state["root_level"])
    _state.update(dir=None, file=None)


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


def _progress_bars(on: bool, only: tuple = ("hub", "datasets", "transformers")) -> tuple:
    """Turn Hugging Face progress bars (hub downloads, datasets saving, transformers loading) on or off; returns
    which switches changed (to undo exactly that)."""
    changed = []
    for key, module in (("hub", "huggingface_hub.utils"), ("datasets", "datasets.utils.tqdm")):
        try:
            switch = importlib.import_module(module)  # every command that gets here imports both anyway
            if key in only and switch.are_progress_bars_disabled() == on:
                (switch.enable_progress_bars if on else switch.disable_progress_bars)()
                changed.append(key)
        except Exception:  # noqa: BLE001 - optional: only progress bars
            pass
    hf_logging = sys.modules.get("transformers.utils.logging")  # it reads the hub's switch once, at import
    if hf_logging is not None and "transformers" in only and hf_logging.is_progress_bar_enabled() != on:
        (hf_logging.enable_progress_bar if on else hf_logging.disable_progress_bar)()
        changed.append("transformers")
    return tuple(changed)


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
