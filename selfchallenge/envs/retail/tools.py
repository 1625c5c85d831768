"""The 16 retail tools, with tau-bench v1's semantics (spec: docs benchmarks-spec.md section 1.2).

Each tool is `tool(data, **arguments) -> str` over the live database `{"orders","products","users"}`. A refused
call raises `ToolError(<tau-bench message>)`. Checks run before any change, in tau-bench's order, so the state a
tool leaves behind (and so the database hash) matches tau-bench's bit for bit: the same floats, rounded at the
same points, the same list orders.
"""

from __future__ import annotations

import copy
import json

from ..taubench import ToolError, calculate, think, transfer_to_human_agents

CANCEL_REASONS = ("no longer needed", "ordered by mistake")


def _order(data: dict, order_id: str) -> dict:
    order = data["orders"].get(order_id)
    if order is None:
        raise ToolError("order not found")
    return order


def _check_items_present(order: dict, item_ids: list[str], message: str | None = None) -> None:
    """Each id must occur in the order at least as often as in `item_ids` (duplicates are allowed)."""
    in_order = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise ToolError(message or f"{item_id} not found")


def _price_difference(data: dict, order: dict, item_ids: list[str], new_item_ids: list[str]) -> float:
    """Σ(new price − old price) over the pairs; each new item must be an available variant of the same product."""
    if len(item_ids) != len(new_item_ids):
        raise ToolError("the number of items to be exchanged should match")
    products = data["products"]
    difference = 0
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = next(item for item in order["items"] if item["item_id"] == item_id)
        variants = products[item["product_id"]]["variants"]
        if not (new_item_id in variants and variants[new_item_id]["available"]):
            raise ToolError(f"new item {new_item_id} not found or available")
        difference += variants[new_item_id]["price"] - item["price"]
    return difference


def _payment_method(data: dict, user_id: str, payment_method_id: str) -> dict:
    methods = data["users"][user_id]["payment_methods"]
    if payment_method_id not in methods:
        raise ToolError("payment method not found")
    return methods[payment_method_id]


def _new_address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict:
    return {"address1": address1, "address2": address2, "city": city, "state": state, "country": country, "zip": zip}


# --- writes -----------------------------------------------------------------------------------------------


def cancel_pending_order(data: dict, order_id: str, reason: str) -> str:
    """Cancel a pending order; each payment is refunded (gift cards at once). Returns the order as JSON."""
    order = _order(data, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("invalid reason")
    refunds = []
    for payment in order["payment_history"]:
        method_id = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": method_id})
        if "gift_card" in method_id:
            gift_card = data["users"][order["user_id"]]["payment_methods"][method_id]
            gift_card["balance"] = round(gift_card["balance"] + payment["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def exchange_delivered_order_items(
    data: dict, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Request an exchange of delivered items for other available variants of the same products."""
    order = _order(data, order_id)
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be exchanged")
    _check_items_present(order, item_ids)
    difference = round(_price_difference(data, order, item_ids, new_item_ids), 2)
    method = _payment_method(data, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise ToolError("insufficient gift card balance to pay for the price difference")
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = difference
    return json.dumps(order)


def modify_pending_order_address(
    data: dict, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace the shipping address of a pending order."""
    order = _order(data, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    order["address"] = _new_address(address1, address2, city, state, country, zip)
    return json.dumps(order)


def modify_pending_order_items(
    data: dict, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for other available variants of the same products (once per order)."""
    order = _order(data, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    _check_items_present(order, item_ids)
    difference = _price_difference(data, order, item_ids, new_item_ids)  # deliberately not rounded (upstream)
    method = _payment_method(data, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise ToolError("insufficient gift card balance to pay for the new item")
    order["payment_history"].append(
        {
            "transaction_type": "payment" if difference > 0 else "refund",
            "amount": abs(difference),
            "payment_method_id": payment_method_id,
        }
    )
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - difference, 2)
    variants_of = data["products"]
    # One pair at a time: with duplicate ids, each lookup finds the next item not yet rewritten.
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = next(item for item in order["items"] if item["item_id"] == item_id)
        variant = variants_of[item["product_id"]]["variants"][new_item_id]
        item["item_id"] = new_item_id
        item["price"] = variant["price"]
        item["options"] = copy.deepcopy(variant["options"])
    order["status"] = "pending (item modified)"
    return json.dumps(order)


def modify_pending_order_payment(data: dict, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order with another of the user's payment methods; the old one is refunded."""
    order = _order(data, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    methods = data["users"][order["user_id"]]["payment_methods"]
    if payment_method_id not in methods:
        raise ToolError("payment method not found")
    history = order["payment_history"]
    if len(history) > 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("there should be exactly one payment for a pending order")
    old_method_id = history[0]["payment_method_id"]
    if old_method_id == payment_method_id:
        raise ToolError("the new payment method should be different from the current one")
    amount = history[0]["amount"]
    method = methods[payment_method_id]
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise ToolError("insufficient gift card balance to pay for the order")
    history.append({"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id})
    history.append({"transaction_type": "refund", "amount": amount, "payment_method_id": old_method_id})
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - amount, 2)
    if "gift_card" in old_method_id:
        old_method = methods[old_method_id]
        old_method["balance"] = round(old_method["balance"] + amount, 2)
    return json.dumps(order)


def modify_user_address(
    data: dict, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace a user's default address."""
    user = data["users"].get(user_id)
    if user is None:
        raise ToolError("user not found")
    user["address"] = _new_address(address1, address2, city, state, country, zip)
    return json.dumps(user)


def return_delivered_order_items(data: dict, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Request a return of delivered items, refunded to the original payment method or a gift card."""
    order = _order(data, order_id)
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be returned")
    if payment_method_id not in data["users"][order["user_id"]]["payment_methods"]:
        raise ToolError("payment method not found")
    if "gift_card" not in payment_method_id and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise ToolError("payment method should be either the original payment method or a gift card")
    _check_items_present(order, item_ids, message="some item not found")
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return json.dumps(order)


# --- reads ------------------------------------------------------------------------------------------------


def find_user_id_by_email(data: dict, email: str) -> str:
    """The user id whose e-mail matches (case-insensitive)."""
    for user_id, user in data["users"].items():
        if user["email"].lower() == email.lower():
            return user_id
    raise ToolError("user not found")


def find_user_id_by_name_zip(data: dict, first_name: str, last_name: str, zip: str) -> str:
    """The user id with this first and last name (case-insensitive) and zip code (exact)."""
    for user_id, user in data["users"].items():
        name = user["name"]
        if (
            name["first_name"].lower() == first_name.lower()
            and name["last_name"].lower() == last_name.lower()
            and user["address"]["zip"] == zip
        ):
            return user_id
    raise ToolError("user not found")


def get_order_details(data: dict, order_id: str) -> str:
    """The order record as JSON."""
    return json.dumps(_order(data, order_id))


def get_product_details(data: dict, product_id: str) -> str:
    """The product record (all variants) as JSON."""
    product = data["products"].get(product_id)
    if product is None:
        raise ToolError("product not found")
    return json.dumps(product)


def get_user_details(data: dict, user_id: str) -> str:
    """The user record as JSON."""
    user = data["users"].get(user_id)
    if user is None:
        raise ToolError("user not found")
    return json.dumps(user)


def list_all_product_types(data: dict) -> str:
    """JSON object product name -> product id, sorted by name."""
    by_name = {product["name"]: product["product_id"] for product in data["products"].values()}
    return json.dumps(dict(sorted(by_name.items())))


# In tau-bench's ALL_TOOLS order.
RETAIL_TOOLS = {
    function.__name__: function
    for function in (
        calculate,
        cancel_pending_order,
        exchange_delivered_order_items,
        find_user_id_by_email,
        find_user_id_by_name_zip,
        get_order_details,
        get_product_details,
        get_user_details,
        list_all_product_types,
        modify_pending_order_address,
        modify_pending_order_items,
        modify_pending_order_payment,
        modify_user_address,
        return_delivered_order_items,
        think,
        transfer_to_human_agents,
    )
}
