"""The retail environment: tau-bench v1 retail over the benchmark data or a generated world."""

from __future__ import annotations

from collections.abc import Callable

from ..taubench import TauBenchEnvironment, data_dir_key, find_data_files, load_data_files, read_int
from .generator import CATALOG, DEFAULT_SIZES, generate_world
from .policy import RETAIL_POLICY
from .schemas import RETAIL_TOOL_SCHEMAS
from .tools import RETAIL_TOOLS

TABLES = ("orders", "products", "users")


class RetailEnvironment(TauBenchEnvironment):
    """env_config: `data_dir` (a tau-bench retail folder) or `seed` plus `num_users`, `num_orders`, `num_products`."""

    name = "retail"
    tool_functions = RETAIL_TOOLS
    tool_schemas = RETAIL_TOOL_SCHEMAS
    policy = RETAIL_POLICY

    @classmethod
    def world_source(cls, env_config: dict) -> tuple[tuple, Callable[[], dict]]:
        if env_config.get("data_dir"):
            paths = find_data_files(env_config["data_dir"], cls.name, TABLES)
            return data_dir_key(cls.name, paths), lambda: load_data_files(paths)
        seed = read_int(env_config, "seed", 0, minimum=0)
        sizes = {
            "num_users": read_int(env_config, "num_users", DEFAULT_SIZES["num_users"], minimum=1),
            "num_orders": read_int(env_config, "num_orders", DEFAULT_SIZES["num_orders"], minimum=0),
            "num_products": read_int(
                env_config, "num_products", DEFAULT_SIZES["num_products"], minimum=1, maximum=len(CATALOG)
            ),
        }
        key = (cls.name, "generated", seed, tuple(sorted(sizes.items())))
        return key, lambda: generate_world(seed, **sizes)
