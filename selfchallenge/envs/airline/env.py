"""The airline environment: tau-bench v1 airline over the benchmark data or a generated world."""

from __future__ import annotations

from ..taubench import TauBenchEnvironment
from .discovery import DISCOVERY_FUNCTIONS, DISCOVERY_SCHEMAS
from .generator import DEFAULT_SIZES, generate_world
from .policy import AIRLINE_POLICY
from .schemas import AIRLINE_TOOL_SCHEMAS
from .tools import AIRLINE_TOOLS

TABLES = ("flights", "reservations", "users")


class AirlineEnvironment(TauBenchEnvironment):
    """env_config: `data_dir` (a tau-bench airline folder) or `seed` plus `num_users`, `num_flights`,
    `num_reservations`."""

    name = "airline"
    state_doc = 'the database: {"flights": {...}, "reservations": {reservation_id: reservation}, "users": {...}}'
    example_task = {
        "instruction": (
            "You are user mia_chen_1234. You want to add one checked bag to reservation ABC123, paying with your "
            "credit card credit_card_1111111. You are a regular member."
        ),
        "verifier": "def evaluate(state, answer):\n    return state['reservations']['ABC123']['total_baggages'] == 1",
        "solution": (
            "update_reservation_baggages(reservation_id='ABC123', total_baggages=1, nonfree_baggages=1,\n"
            "                            payment_id='credit_card_1111111')\nanswer = 'Added one bag.'"
        ),
        "failure_cases": [
            "update_reservation_baggages(reservation_id='ABC123', total_baggages=2, nonfree_baggages=2,\n"
            "                            payment_id='credit_card_1111111')",
            "answer = 'Added one bag.'",
        ],
    }
    tool_functions = AIRLINE_TOOLS
    tool_schemas = AIRLINE_TOOL_SCHEMAS
    policy = AIRLINE_POLICY
    tables = TABLES
    discovery_functions = DISCOVERY_FUNCTIONS
    discovery_schemas = DISCOVERY_SCHEMAS
    size_bounds = {
        "num_users": (DEFAULT_SIZES["num_users"], 1, None),
        "num_flights": (DEFAULT_SIZES["num_flights"], 3, 999),
        "num_reservations": (DEFAULT_SIZES["num_reservations"], 0, None),
    }
    generate_world = staticmethod(generate_world)
