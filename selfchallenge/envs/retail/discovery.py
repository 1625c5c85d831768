"""Challenger-only discovery tools for retail: a random user with their orders, a random order. Read-only.

The benchmark's own tools need an email, a name + zip or an id to find anything, which a challenger exploring a
world it has never seen cannot know; these show it real records to write tasks about. They are never given to
the executor (see `Environment.discovery_tools`).
"""

from __future__ import annotations

import json
import random

from ..taubench import ToolError, pick_user
from .schemas import function_schema, string

ORDER_STATUSES = ("pending", "processed", "delivered", "cancelled")


def _order_view(order: dict) -> dict:
    return {
        "order_id": order["order_id"],
        "status": order["status"],
        "items": [
            {key: item[key] for key in ("name", "product_id", "item_id", "price", "options")} for item in order["items"]
        ],
        "payment_method_ids": sorted({p["payment_method_id"] for p in order["payment_history"]}),
    }


def random_user(data: dict, rng: random.Random) -> str:
    """A random user: id, name, email, zip, payment methods and every order with its status and items."""
    user_id, user, methods = pick_user(data, rng)
    orders = [data["orders"][order_id] for order_id in user.get("orders", []) if order_id in data["orders"]]
    view = {
        "user_id": user_id,
        "name": user["name"],
        "email": user["email"],
        "zip": user["address"]["zip"],
        "payment_methods": methods,
        "orders": [_order_view(order) for order in orders],
    }
    return json.dumps(view)


def random_order(data: dict, rng: random.Random, status: str = "") -> str:
    """A random order (with the given status, if one is given) and its user's id, name and email."""
    if status and status not in ORDER_STATUSES:
        raise ToolError(f"status must be one of {list(ORDER_STATUSES)} or empty")
    orders = [order for _id, order in sorted(data["orders"].items()) if not status or order["status"] == status]
    if not orders:
        raise ToolError(f"no {status} order in this world" if status else "the world has no orders")
    order = rng.choice(orders)
    user = data["users"].get(order["user_id"], {})
    return json.dumps(
        {**_order_view(order), "user_id": order["user_id"], "name": user.get("name"), "email": user.get("email")}
    )


DISCOVERY_FUNCTIONS = {"random_user": random_user, "random_order": random_order}
DISCOVERY_SCHEMAS = [
    function_schema(
        "random_user",
        "Challenger only: a random user of this world with their id, name, email, zip, payment methods and orders.",
    ),
    function_schema(
        "random_order",
        "Challenger only: a random order (optionally with a given status) with its items and its user.",
        {"status": string("pending, processed, delivered, cancelled, or empty for any")},
        required=[],
    ),
]
