"""tau-bench v1 retail: an online store's orders, products and users, 16 tools and the agent policy."""

from .env import RetailEnvironment

ENV_CLASS = RetailEnvironment

__all__ = ["ENV_CLASS", "RetailEnvironment"]
