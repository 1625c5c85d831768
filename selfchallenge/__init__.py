"""selfchallenge: Self-Challenging Language Model Agents.

Keep this file import-free: the sandbox worker imports `selfchallenge.envs` and `selfchallenge.sandbox.worker`
with the standard library only.
"""

__version__ = "0.1.0"
