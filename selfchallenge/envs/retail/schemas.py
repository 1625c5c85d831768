"""OpenAI function schemas of the retail tools (names, argument names, types, enums and required as tau-bench)."""

from __future__ import annotations

from .tools import CANCEL_REASONS


def function_schema(name: str, description: str, properties: dict | None = None, required: list | None = None) -> dict:
    """One OpenAI-style tool schema; `required` defaults to every property."""
    properties = properties or {}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties) if required is None else required,
            },
        },
    }


def string(description: str) -> dict:
    return {"type": "string", "description": description}


def string_list(description: str) -> dict:
    return {"type": "array", "items": {"type": "string"}, "description": description}


CALCULATE = function_schema(
    "calculate",
    "Evaluate an arithmetic expression and return the result rounded to two decimals.",
    {"expression": string("Numbers, the operators + - * /, parentheses and spaces, such as '(12.5 + 3) * 2'.")},
)
THINK = function_schema(
    "think",
    "Write down a thought, for example to reason or plan. It neither reads nor changes anything.",
    {"thought": string("The thought.")},
)
TRANSFER_TO_HUMAN_AGENTS = function_schema(
    "transfer_to_human_agents",
    "Hand the user over to a human agent, with a summary of their issue. Use it only when the user explicitly "
    "asks for a human, or when the request cannot be handled with the available tools under the policy.",
    {"summary": string("A short summary of the user's issue.")},
)

_ORDER_ID = string("The order id, starting with '#', such as '#W0000000'.")
_PAYMENT_METHOD_ID = string(
    "The id of one of the user's payment methods, such as 'gift_card_0000000' or 'credit_card_0000000' "
    "(see the user's details)."
)
_ADDRESS = {
    "address1": string("First address line, such as '123 Main St'."),
    "address2": string("Second address line, such as 'Apt 1' or 'Suite 300' (may be empty)."),
    "city": string("City, such as 'San Francisco'."),
    "state": string("State, such as 'CA'."),
    "country": string("Country, such as 'USA'."),
    "zip": string("Zip code, such as '12345'."),
}

RETAIL_TOOL_SCHEMAS = [
    CALCULATE,
    function_schema(
        "cancel_pending_order",
        "Cancel a pending order. Payments are refunded: at once to gift cards, otherwise within 5-7 business days. "
        "Confirm the order and the reason with the user (explicit yes) first.",
        {
            "order_id": _ORDER_ID,
            "reason": {
                "type": "string",
                "enum": list(CANCEL_REASONS),
                "description": "Why the user cancels: 'no longer needed' or 'ordered by mistake'.",
            },
        },
    ),
    function_schema(
        "exchange_delivered_order_items",
        "Exchange items of a delivered order for other available options of the same products; the order becomes "
        "'exchange requested'. Collect every item to exchange first (it can be done once per order) and get an "
        "explicit yes from the user.",
        {
            "order_id": _ORDER_ID,
            "item_ids": string_list("Item ids to exchange, such as '1008292230'; an id may repeat."),
            "new_item_ids": string_list(
                "Replacement item ids, position by position, each an available variant of the same product."
            ),
            "payment_method_id": _PAYMENT_METHOD_ID,
        },
    ),
    function_schema(
        "find_user_id_by_email",
        "Look up a user id from an e-mail address.",
        {"email": string("The e-mail address, such as 'something@example.com'.")},
    ),
    function_schema(
        "find_user_id_by_name_zip",
        "Look up a user id from first name, last name and zip code. Prefer the e-mail lookup when possible.",
        {
            "first_name": string("First name, such as 'John'."),
            "last_name": string("Last name, such as 'Doe'."),
            "zip": string("Zip code, such as '12345'."),
        },
    ),
    function_schema(
        "get_order_details", "Show an order: items, status, fulfillments, payments.", {"order_id": _ORDER_ID}
    ),
    function_schema(
        "get_product_details",
        "Show a product type and all its variants (item ids, options, availability, prices).",
        {"product_id": string("The product id, such as '6086499569' (not an item id).")},
    ),
    function_schema(
        "get_user_details",
        "Show a user's profile: name, address, e-mail, payment methods and order ids.",
        {"user_id": string("The user id, such as 'sara_doe_496'.")},
    ),
    function_schema(
        "list_all_product_types", "List every product type in the store as name -> product id, sorted by name."
    ),
    function_schema(
        "modify_pending_order_address",
        "Change the shipping address of a pending order. Confirm the new address with the user (explicit yes) first.",
        {"order_id": _ORDER_ID, **_ADDRESS},
    ),
    function_schema(
        "modify_pending_order_items",
        "Change items of a pending order to other available options of the same products; the order becomes "
        "'pending (item modified)' and cannot be modified or cancelled afterwards. Collect every item to change "
        "first and get an explicit yes from the user.",
        {
            "order_id": _ORDER_ID,
            "item_ids": string_list("Item ids to change, such as '1008292230'; an id may repeat."),
            "new_item_ids": string_list(
                "Replacement item ids, position by position, each an available variant of the same product."
            ),
            "payment_method_id": _PAYMENT_METHOD_ID,
        },
    ),
    function_schema(
        "modify_pending_order_payment",
        "Pay a pending order with a different one of the user's payment methods; the old one is refunded. "
        "Confirm with the user (explicit yes) first.",
        {"order_id": _ORDER_ID, "payment_method_id": _PAYMENT_METHOD_ID},
    ),
    function_schema(
        "modify_user_address",
        "Change a user's default address. Confirm the new address with the user (explicit yes) first.",
        {"user_id": string("The user id, such as 'sara_doe_496'."), **_ADDRESS},
    ),
    function_schema(
        "return_delivered_order_items",
        "Return items of a delivered order; the order becomes 'return requested' and the user gets instructions "
        "by e-mail. The refund goes to the original payment method or a gift card. Confirm with the user first.",
        {
            "order_id": _ORDER_ID,
            "item_ids": string_list("Item ids to return, such as '1008292230'; an id may repeat."),
            "payment_method_id": _PAYMENT_METHOD_ID,
        },
    ),
    THINK,
    TRANSFER_TO_HUMAN_AGENTS,
]
