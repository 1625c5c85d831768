"""tau-bench v1 airline: flights, reservations and users, 14 tools and the agent policy."""

from .env import AirlineEnvironment

ENV_CLASS = AirlineEnvironment

__all__ = ["ENV_CLASS", "AirlineEnvironment"]
