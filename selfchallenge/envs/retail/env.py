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
    state_doc = 'the database: {"orders": {order_id: order}, "products": {...}, "users": {user_id: user}}'
    example_task = {
        "instruction": (
            "You are Ava Lee, email ava.lee@example.com. You want to cancel your pending order #W0000001 because "
            "you no longer need it. You do not remember any other details."
        ),
        "verifier": (
            "def evaluate(state, answer):\n    order = state['orders']['#W0000001']\n"
            "    return order['status'] == 'cancelled' and order.get('cancel_reason') == 'no longer needed'"
        ),
        "solution": (
            "cancel_pending_order(order_id='#W0000001', reason='no longer needed')\n"
            "answer = 'Your order #W0000001 is cancelled.'"
        ),
        "failure_cases": [
            "cancel_pending_order(order_id='#W0000001', reason='ordered by mistake')",
            "answer = 'Your order #W0000001 is cancelled.'",
        ],
    }
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
