"""Warm start for the tiny model: seeded Code-as-Task generators (generators.py), scripted transcripts through the
real episode loops and sandbox (transcripts.py), and the SFT recipe + held-out set (recipe.py)."""

from .generators import FLAWS, GENERATOR_DOMAINS, GeneratedTask, generate_tasks
from .recipe import WarmstartConfig, build_heldout, training_tasks, warmstart

__all__ = [
    "FLAWS",
    "GENERATOR_DOMAINS",
    "GeneratedTask",
    "WarmstartConfig",
    "build_heldout",
    "generate_tasks",
    "training_tasks",
    "warmstart",
]
