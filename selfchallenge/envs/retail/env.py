"""The retail environment: tau-bench v1 retail over the benchmark data or a generated world."""

from __future__ import annotations

from ..taubench import TauBenchEnvironment
from .discovery import DISCOVERY_FUNCTIONS, DISCOVERY_SCHEMAS
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
    tables = TABLES
    discovery_functions = DISCOVERY_FUNCTIONS
    discovery_schemas = DISCOVERY_SCHEMAS
    size_bounds = {
        "num_users": (DEFAULT_SIZES["num_users"], 1, None),
        "num_orders": (DEFAULT_SIZES["num_orders"], 0, None),
        "num_products": (DEFAULT_SIZES["num_products"], 1, len(CATALOG)),
    }
    generate_world = staticmethod(generate_world)
