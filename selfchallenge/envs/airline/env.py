"""The airline environment: tau-bench v1 airline over the benchmark data or a generated world."""

from __future__ import annotations

from collections.abc import Callable

from ..taubench import TauBenchEnvironment, data_dir_key, find_data_files, load_data_files, read_int
from .generator import DEFAULT_SIZES, generate_world
from .policy import AIRLINE_POLICY
from .schemas import AIRLINE_TOOL_SCHEMAS
from .tools import AIRLINE_TOOLS

TABLES = ("flights", "reservations", "users")


class AirlineEnvironment(TauBenchEnvironment):
    """env_config: `data_dir` (a tau-bench airline folder) or `seed` plus `num_users`, `num_flights`,
    `num_reservations`."""

    name = "airline"
    tool_functions = AIRLINE_TOOLS
    tool_schemas = AIRLINE_TOOL_SCHEMAS
    policy = AIRLINE_POLICY

    @classmethod
    def world_source(cls, env_config: dict) -> tuple[tuple, Callable[[], dict]]:
        if env_config.get("data_dir"):
            paths = find_data_files(env_config["data_dir"], cls.name, TABLES)
            return data_dir_key(cls.name, paths), lambda: load_data_files(paths)
        seed = read_int(env_config, "seed", 0, minimum=0)
        sizes = {
            "num_users": read_int(env_config, "num_users", DEFAULT_SIZES["num_users"], minimum=1),
            "num_flights": read_int(env_config, "num_flights", DEFAULT_SIZES["num_flights"], minimum=3, maximum=999),
            "num_reservations": read_int(env_config, "num_reservations", DEFAULT_SIZES["num_reservations"], minimum=0),
        }
        key = (cls.name, "generated", seed, tuple(sorted(sizes.items())))
        return key, lambda: generate_world(seed, **sizes)
