"""Environments (stdlib only; imported inside the sandbox). `make_env(name, env_config)` is the one entry point.

`REGISTRY` is the one place an environment is named. Each entry says where its `ENV_CLASS` is: a module of this
package, or a plug-in folder (a path relative to the project root, holding an `__init__.py` that defines
`ENV_CLASS`), which the sandbox mounts read-only beside the package. A new environment is its folder and one line
here; everything else (prompts, the episode loop, the sandbox) asks the class (`envs/base.py`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from .base import Environment

REGISTRY = {
    "calculation": "selfchallenge.envs.calculation",
    "web_browsing": "selfchallenge.envs.web_browsing",
    "retail": "selfchallenge.envs.retail",
    "airline": "selfchallenge.envs.airline",
    "thermostat": "examples/thermostat",
}
ENV_NAMES = tuple(REGISTRY)
# The checkout on the host; inside the sandbox, where the package is mounted (plug-ins are mounted beside it).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plugin_folder(name: str) -> str | None:
    """The absolute folder of a plug-in environment (None for one of this package's)."""
    where = REGISTRY[name]
    return os.path.join(PROJECT_ROOT, where) if "/" in where else None


def plugin_folders() -> dict[str, str]:
    """Relative path -> absolute folder of every plug-in present (what the sandbox mounts)."""
    folders = {REGISTRY[name]: plugin_folder(name) for name in ENV_NAMES if plugin_folder(name)}
    return {rel: path for rel, path in folders.items() if os.path.isfile(os.path.join(path, "__init__.py"))}


def env_class(name: str) -> type[Environment]:
    if name not in REGISTRY:
        raise ValueError(f"unknown environment {name!r}; choose one of {list(ENV_NAMES)}")
    folder = plugin_folder(name)
    if folder is None:
        return importlib.import_module(REGISTRY[name]).ENV_CLASS
    module_name = f"selfchallenge_env_{name}"
    if module_name not in sys.modules:
        init = os.path.join(folder, "__init__.py")
        if not os.path.isfile(init):
            raise ValueError(f"environment {name!r} is registered at {REGISTRY[name]!r}, but {init} does not exist")
        spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[folder])
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name].ENV_CLASS


def make_env(name: str, env_config: dict | None = None) -> Environment:
    """A fresh environment with an untouched world. Worlds are cached per config, so repeated calls are cheap."""
    return env_class(name)(env_config or {})


def is_dialogue(name: str) -> bool:
    """Whether a simulated user takes part in this environment's episodes (retail, airline)."""
    return env_class(name).dialogue
