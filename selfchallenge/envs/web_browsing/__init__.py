"""M3ToolEval web browsing: a 5-line text browser over a small company web site."""

from .env import WebBrowsingEnv

ENV_CLASS = WebBrowsingEnv

__all__ = ["ENV_CLASS", "WebBrowsingEnv"]
