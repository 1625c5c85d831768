"""Environments (stdlib only; imported inside the sandbox). `make_env(name, env_config)` is the one entry point."""

from __future__ import annotations

import importlib

from .base import Environment

ENV_NAMES = ("calculation", "web_browsing", "retail", "airline")


def env_class(name: str) -> type[Environment]:
    if name not in ENV_NAMES:
        raise ValueError(f"unknown environment {name!r}; choose one of {list(ENV_NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.ENV_CLASS


def make_env(name: str, env_config: dict | None = None) -> Environment:
    """A fresh environment with an untouched world. Worlds are cached per config, so repeated calls are cheap."""
    return env_class(name)(env_config or {})
