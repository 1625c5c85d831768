"""The retail environment: tool semantics and messages, schemas, world loading and caching, the generator."""

import copy
import inspect
import json
import time
from pathlib import Path

import pytest

from selfchallenge.envs import make_env
from selfchallenge.envs.base import consistent_hash
from selfchallenge.envs.retail import tools as retail
from selfchallenge.envs.retail.generator import CATALOG, generate_world
from selfchallenge.envs.taubench import ToolError

TOOL_NAMES = [
    "calculate",
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_order_details",
    "get_product_details",
    "get_user_details",
    "list_all_product_types",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
    "think",
    "transfer_to_human_agents",
]
ADDRESS = {
    "address1": "1 New St",
    "address2": "Apt 2",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


def _item(product_id, item_id, price, color):
    return {"name": "x", "product_id": product_id, "item_id": item_id, "price": price, "options": {"color": color}}


def variant(item_id, color, available, price):
    return {"item_id": item_id, "options": {"color": color}, "available": available, "price": price}


def small_world():
    """A hand-made world whose prices make the rounding rules visible (10.3 - 10.1 is not 0.2 in floats)."""
    return {
        "products": {
            "P2": {
                "name": "Lamp",
                "product_id": "P2",
                "variants": {
                    "A": variant("A", "red", True, 10.1),
                    "B": variant("B", "blue", True, 10.3),
                    "C": variant("C", "green", False, 5.0),
                    "X": variant("X", "gold", True, 400.0),
                },
            },
            "P1": {
                "name": "Cup",
                "product_id": "P1",
                "variants": {"D": variant("D", "white", True, 3.3), "E": variant("E", "black", True, 4.4)},
            },
        },
        "users": {
            "ann_lee_1": {
                "name": {"first_name": "Ann", "last_name": "Lee"},
                "address": {**ADDRESS, "zip": "12345"},
                "email": "Ann.Lee@example.com",
                "payment_methods": {
                    "gift_card_1": {"source": "gift_card", "balance": 51, "id": "gift_card_1"},
                    "credit_card_1": {
                        "source": "credit_card",
                        "brand": "visa",
                        "last_four": "1111",
                        "id": "credit_card_1",
                    },
                    "paypal_1": {"source": "paypal", "id": "paypal_1"},
                },
                "orders": ["#W1", "#W2"],
            }
        },
        "orders": {
            "#W1": {
                "order_id": "#W1",
                "user_id": "ann_lee_1",
                "address": dict(ADDRESS),
                "status": "pending",
                "items": [_item("P2", "A", 10.1, "red"), _item("P2", "A", 10.1, "red"), _item("P1", "D", 3.3, "white")],
                "fulfillments": [],
                "payment_history": [
                    {"transaction_type": "payment", "amount": 23.5, "payment_method_id": "gift_card_1"}
                ],
            },
            "#W2": {
                "order_id": "#W2",
                "user_id": "ann_lee_1",
                "address": dict(ADDRESS),
                "status": "delivered",
                "items": [_item("P2", "A", 10.1, "red"), _item("P1", "D", 3.3, "white")],
                "fulfillments": [{"tracking_id": ["123"], "item_ids": ["A", "D"]}],
                "payment_history": [
                    {"transaction_type": "payment", "amount": 13.4, "payment_method_id": "credit_card_1"}
                ],
            },
        },
    }


def refused(call, message):
    """The tool raises ToolError with exactly tau-bench's message."""
    with pytest.raises(ToolError) as caught:
        call()
    assert str(caught.value) == message


@pytest.fixture(scope="module")
def real_config(shared_data):
    return {"data_dir": str(shared_data / "taubench" / "retail")}


# --- tools on a hand-made world ---------------------------------------------------------------------------


def test_cancel_refunds_gift_card_at_once_and_checks_status_and_reason():
    data = small_world()
    refused(lambda: retail.cancel_pending_order(data, "#W1", "changed my mind"), "invalid reason")
    refused(
        lambda: retail.cancel_pending_order(data, "#W2", "no longer needed"), "non-pending order cannot be cancelled"
    )
    refused(lambda: retail.cancel_pending_order(data, "#W9", "no longer needed"), "order not found")
    order = json.loads(retail.cancel_pending_order(data, "#W1", "ordered by mistake"))
    assert order["status"] == "cancelled" and order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"][-1] == {
        "transaction_type": "refund",
        "amount": 23.5,
        "payment_method_id": "gift_card_1",
    }
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 74.5


def test_modify_items_uses_the_unrounded_difference_and_rewrites_duplicates_in_place():
    data = small_world()
    result = json.loads(retail.modify_pending_order_items(data, "#W1", ["A", "A"], ["B", "B"], "gift_card_1"))
    raw_difference = (10.3 - 10.1) + (10.3 - 10.1)
    assert raw_difference != round(raw_difference, 2)
    assert result["payment_history"][-1] == {
        "transaction_type": "payment",
        "amount": raw_difference,
        "payment_method_id": "gift_card_1",
    }
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == round(51 - raw_difference, 2)
    assert [(i["item_id"], i["price"], i["options"]) for i in data["orders"]["#W1"]["items"]] == [
        ("B", 10.3, {"color": "blue"}),
        ("B", 10.3, {"color": "blue"}),
        ("D", 3.3, {"color": "white"}),
    ]
    assert result["status"] == "pending (item modified)"
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["D"], ["E"], "paypal_1"),
        "non-pending order cannot be modified",
    )


def test_modify_items_refund_when_cheaper_and_every_refusal_message():
    data = small_world()
    refused(lambda: retail.modify_pending_order_items(data, "#W1", ["D", "D"], ["E", "E"], "paypal_1"), "D not found")
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["A"], ["B", "B"], "paypal_1"),
        "the number of items to be exchanged should match",
    )
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["A"], ["C"], "paypal_1"),
        "new item C not found or available",
    )
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["A"], ["E"], "paypal_1"),
        "new item E not found or available",
    )
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["A"], ["B"], "paypal_9"), "payment method not found"
    )
    refused(
        lambda: retail.modify_pending_order_items(data, "#W1", ["A"], ["X"], "gift_card_1"),
        "insufficient gift card balance to pay for the new item",
    )
    assert data == small_world()  # refusals change nothing
    retail.modify_pending_order_items(data, "#W1", ["A"], ["A"], "paypal_1")  # same variant: a zero refund
    assert data["orders"]["#W1"]["payment_history"][-1]["transaction_type"] == "refund"
    assert data["orders"]["#W1"]["payment_history"][-1]["amount"] == 0.0


def test_exchange_rounds_the_difference_sorts_lists_and_moves_no_money():
    data = small_world()
    refused(
        lambda: retail.exchange_delivered_order_items(data, "#W1", ["A"], ["B"], "paypal_1"),
        "non-delivered order cannot be exchanged",
    )
    refused(
        lambda: retail.exchange_delivered_order_items(data, "#W2", ["A"], ["X"], "gift_card_1"),
        "insufficient gift card balance to pay for the price difference",
    )
    order = json.loads(retail.exchange_delivered_order_items(data, "#W2", ["D", "A"], ["E", "B"], "gift_card_1"))
    assert order["status"] == "exchange requested"
    assert order["exchange_items"] == ["A", "D"] and order["exchange_new_items"] == ["B", "E"]
    assert order["exchange_price_difference"] == round((4.4 - 3.3) + (10.3 - 10.1), 2) == 1.3
    assert order["exchange_payment_method_id"] == "gift_card_1"
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 51
    assert len(order["payment_history"]) == 1


def test_return_accepts_original_method_or_gift_card_only():
    data = small_world()
    refused(
        lambda: retail.return_delivered_order_items(data, "#W2", ["A"], "paypal_1"),
        "payment method should be either the original payment method or a gift card",
    )
    refused(
        lambda: retail.return_delivered_order_items(data, "#W2", ["A", "A"], "credit_card_1"), "some item not found"
    )
    refused(
        lambda: retail.return_delivered_order_items(data, "#W1", ["A"], "credit_card_1"),
        "non-delivered order cannot be returned",
    )
    order = json.loads(retail.return_delivered_order_items(data, "#W2", ["D", "A"], "gift_card_1"))
    assert order["status"] == "return requested" and order["return_items"] == ["A", "D"]
    assert order["return_payment_method_id"] == "gift_card_1"


def test_modify_payment_moves_gift_card_balances_and_allows_it_once():
    data = small_world()
    refused(
        lambda: retail.modify_pending_order_payment(data, "#W1", "gift_card_1"),
        "the new payment method should be different from the current one",
    )
    order = json.loads(retail.modify_pending_order_payment(data, "#W1", "credit_card_1"))
    assert order["payment_history"][1:] == [
        {"transaction_type": "payment", "amount": 23.5, "payment_method_id": "credit_card_1"},
        {"transaction_type": "refund", "amount": 23.5, "payment_method_id": "gift_card_1"},
    ]
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 74.5
    refused(
        lambda: retail.modify_pending_order_payment(data, "#W1", "paypal_1"),
        "there should be exactly one payment for a pending order",
    )
    data = small_world()
    data["orders"]["#W1"]["payment_history"][0].update(amount=60.0, payment_method_id="paypal_1")
    refused(
        lambda: retail.modify_pending_order_payment(data, "#W1", "gift_card_1"),
        "insufficient gift card balance to pay for the order",
    )
    retail.modify_pending_order_payment(data, "#W1", "credit_card_1")
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 51


def test_address_tools_lookups_and_reads():
    data = small_world()
    assert retail.find_user_id_by_email(data, "ann.LEE@example.com") == "ann_lee_1"
    assert retail.find_user_id_by_name_zip(data, "ANN", "lee", "12345") == "ann_lee_1"
    refused(lambda: retail.find_user_id_by_name_zip(data, "Ann", "Lee", "12346"), "user not found")
    refused(lambda: retail.modify_pending_order_address(data, "#W2", **ADDRESS), "non-pending order cannot be modified")
    assert json.loads(retail.modify_pending_order_address(data, "#W1", **ADDRESS))["address"] == ADDRESS
    assert json.loads(retail.modify_user_address(data, "ann_lee_1", **ADDRESS))["address"] == ADDRESS
    assert retail.find_user_id_by_name_zip(data, "Ann", "Lee", "78701") == "ann_lee_1"
    refused(lambda: retail.modify_user_address(data, "bob", **ADDRESS), "user not found")
    refused(lambda: retail.find_user_id_by_email(data, "nobody@example.com"), "user not found")
    refused(lambda: retail.get_product_details(data, "A"), "product not found")
    refused(lambda: retail.get_user_details(data, "nobody"), "user not found")
    assert list(json.loads(retail.list_all_product_types(data)).items()) == [("Cup", "P1"), ("Lamp", "P2")]
    assert retail.think(data, "hmm") == "" and retail.transfer_to_human_agents(data, "s") == "Transfer successful"


@pytest.mark.parametrize(
    "expression, observation",
    [
        ("2 * (3 + 4.5)", "15.0"),
        ("10 / 3", "3.33"),
        ("-7 // 2", "-4.0"),
        ("2 ** 0.5", "1.41"),
        ("1 / 0", "Error: division by zero"),
        ("abs(1)", "Error: invalid characters in expression"),
        ("1 +", "Error: invalid syntax (<string>, line 1)"),
        ("9 ** 9 ** 9", "Error: int too large to convert to float"),  # our bound; upstream hangs
    ],
)
def test_calculate_observations(real_config, expression, observation):
    assert make_env("retail", real_config).call_tool("calculate", {"expression": expression}) == observation


# --- the environment on the benchmark data ----------------------------------------------------------------


def test_tools_and_schemas_match_tau_bench(real_config):
    env = make_env("retail", real_config)
    assert list(env.tools()) == TOOL_NAMES and env.terminate_tools == {"transfer_to_human_agents"}
    specs = env.tool_specs()
    assert [spec["function"]["name"] for spec in specs] == TOOL_NAMES
    for spec in specs:
        parameters = spec["function"]["parameters"]
        names = list(inspect.signature(env.tools()[spec["function"]["name"]]).parameters)
        assert spec["type"] == "function" and parameters["type"] == "object"
        assert list(parameters["properties"]) == names and parameters["required"] == names
        assert all(isinstance(p.get("type"), str) for p in parameters["properties"].values())
    cancel = specs[1]["function"]["parameters"]["properties"]["reason"]
    assert cancel["enum"] == ["no longer needed", "ordered by mistake"]
    assert specs[2]["function"]["parameters"]["properties"]["item_ids"]["items"] == {"type": "string"}
    # the benchmark's data folder holds its own policy document: the agent's system prompt is that, verbatim
    assert env.describe() == (Path(real_config["data_dir"]) / "wiki.md").read_text()
    policy = make_env("retail", {"seed": 0}).describe()  # a generated world gets the paraphrased policy
    for rule in ("Authenticate", "explicit", "pending (item modified)", "gift card", "one tool call at a time"):
        assert rule in policy


def test_call_tool_observations_are_untruncated_and_use_tau_bench_strings(real_config):
    env = make_env("retail", real_config)
    assert env.call_tool("get_order_details", {"order_id": "#W0000000"}) == "Error: order not found"
    assert env.call_tool("refund_everything", {}) == "Unknown action refund_everything"
    assert env.call_tool("get_user_details", {}) == (
        "Error: GetUserDetails.invoke() missing 1 required positional argument: 'user_id'"
    )
    big = max(env.data["products"], key=lambda pid: len(json.dumps(env.data["products"][pid])))
    shown = env.call_tool("get_product_details", {"product_id": big})
    assert len(shown) > 2000 and json.loads(shown) == env.data["products"][big]
    assert env.call_tool("list_all_product_types", []) == env.tools()["list_all_product_types"]()
    with pytest.raises(ToolError, match="^order not found$"):
        env.tools()["get_order_details"]("#W0000000")


def test_each_env_gets_a_fresh_world_and_reset_restores_it(real_config):
    env = make_env("retail", real_config)
    initial = env.state_hash()
    pending = next(o for o, order in env.data["orders"].items() if order["status"] == "pending")
    snapshot = env.snapshot()
    env.call_tool("cancel_pending_order", {"order_id": pending, "reason": "no longer needed"})
    assert snapshot["orders"][pending]["status"] == "pending"  # snapshots are copies
    assert env.state_hash() != initial == make_env("retail", real_config).state_hash()
    env.snapshot()["orders"][pending]["status"] = "tampered"
    assert env.data["orders"][pending]["status"] == "cancelled"
    env.data["users"]["brand_new_user"] = {}
    env.reset()
    assert env.state_hash() == initial and env.data == make_env("retail", real_config).data
    assert list(env.data["users"]) == list(make_env("retail", real_config).data["users"])
    assert json.loads(env.call_tool("get_order_details", {"order_id": pending}))["status"] == "pending"


def test_data_dir_may_be_the_taubench_parent_and_bad_dirs_are_explained(shared_data, tmp_path):
    parent = make_env("retail", {"data_dir": str(shared_data / "taubench")})
    assert (
        parent.state_hash() == make_env("retail", {"data_dir": str(shared_data / "taubench" / "retail")}).state_hash()
    )
    with pytest.raises(ValueError, match="is not a directory"):
        make_env("retail", {"data_dir": str(tmp_path / "missing")})
    with pytest.raises(FileNotFoundError, match=r"users\.json, orders\.json|orders\.json, products\.json"):
        make_env("retail", {"data_dir": str(tmp_path)})


def test_world_copy_is_cheap_after_the_first_load(real_config):
    make_env("retail", real_config)
    started = time.perf_counter()
    for _ in range(5):
        make_env("retail", real_config)
    assert (time.perf_counter() - started) / 5 < 0.5  # measured ~0.03 s; generous for loaded CI machines


# --- generated worlds -------------------------------------------------------------------------------------


def test_generator_is_deterministic_varied_and_fast():
    started = time.perf_counter()
    world = generate_world(seed=0)
    assert time.perf_counter() - started < 1.0
    assert consistent_hash(world) == consistent_hash(generate_world(seed=0))
    assert consistent_hash(world) != consistent_hash(generate_world(seed=1))
    assert make_env("retail", {}).state_hash() == make_env("retail", {"seed": 0}).state_hash() == consistent_hash(world)
    assert (len(world["users"]), len(world["orders"]), len(world["products"])) == (40, 80, 20)
    statuses = {order["status"] for order in world["orders"].values()}
    assert statuses == {
        "pending", "processed", "delivered", "cancelled", "pending (item modified)", "return requested",
        "exchange requested",
    }  # fmt: skip
    sources = {m["source"] for user in world["users"].values() for m in user["payment_methods"].values()}
    assert sources == {"credit_card", "gift_card", "paypal"}
    availability = {v["available"] for p in world["products"].values() for v in p["variants"].values()}
    assert availability == {True, False}
    assert len({user["email"] for user in world["users"].values()}) == len(world["users"])
    sized = generate_world(seed=5, num_users=3, num_orders=12, num_products=len(CATALOG))
    assert (len(sized["users"]), len(sized["orders"]), len(sized["products"])) == (3, 12, len(CATALOG))


def test_generated_records_are_consistent():
    world = generate_world(seed=2, num_orders=150)
    for order_id, order in world["orders"].items():
        assert order_id in world["users"][order["user_id"]]["orders"]
        assert order["payment_history"][0]["payment_method_id"] in world["users"][order["user_id"]]["payment_methods"]
        for item in order["items"]:
            variant = world["products"][item["product_id"]]["variants"][item["item_id"]]
            assert (item["price"], item["options"]) == (variant["price"], variant["options"])
        if order["status"] != "pending (item modified)":
            total = round(sum(item["price"] for item in order["items"]), 2)
            assert order["payment_history"][0]["amount"] == total
        shipped = sorted(i for f in order["fulfillments"] for i in f["item_ids"])
        expected = [] if order["status"].startswith("pending") else sorted(i["item_id"] for i in order["items"])
        assert shipped == expected
        if order["status"] == "cancelled":
            assert order["payment_history"][-1]["transaction_type"] == "refund"
        if order["status"] == "exchange requested":
            assert len(order["exchange_items"]) == len(order["exchange_new_items"])
    for user in world["users"].values():
        for method in user["payment_methods"].values():
            assert ("balance" in method) == (method["source"] == "gift_card")


def _pick(world, status, need_other_method=False):
    for order_id, order in world["orders"].items():
        methods = world["users"][order["user_id"]]["payment_methods"]
        if order["status"] != status:
            continue
        others = [m for m in methods if m != order["payment_history"][0]["payment_method_id"] and "gift" not in m]
        if need_other_method and not others:
            continue
        return order_id, order, others
    raise AssertionError(f"no {status} order in the generated world")


def _swap(world, order):
    """(old item id, new item id) for an item that has another available variant."""
    for item in order["items"]:
        for new_id, variant in world["products"][item["product_id"]]["variants"].items():
            if variant["available"] and new_id != item["item_id"]:
                return item["item_id"], new_id
    raise AssertionError("no item can be swapped")


def test_every_write_tool_works_on_a_generated_world():
    env = make_env("retail", {"seed": 7, "num_orders": 120})
    world = env.data
    before = env.state_hash()
    pending_id, pending, others = _pick(world, "pending", need_other_method=True)
    user_id = pending["user_id"]
    email = world["users"][user_id]["email"]
    name, zip_code = world["users"][user_id]["name"], world["users"][user_id]["address"]["zip"]
    assert env.call_tool("find_user_id_by_email", {"email": email.upper()}) == user_id
    assert env.call_tool("find_user_id_by_name_zip", {**name, "zip": zip_code}) in world["users"]
    steps = [
        ("modify_pending_order_address", {"order_id": pending_id, **ADDRESS}),
        ("modify_pending_order_payment", {"order_id": pending_id, "payment_method_id": others[0]}),
        ("modify_user_address", {"user_id": user_id, **ADDRESS}),
    ]
    for name_, arguments in steps:
        observation = env.call_tool(name_, arguments)
        assert not observation.startswith("Error"), (name_, observation)
    second_id, second, _ = next(
        (oid, o, None) for oid, o in world["orders"].items() if o["status"] == "pending" and oid != pending_id
    )
    old, new = _swap(world, second)
    method = next(m for m in world["users"][second["user_id"]]["payment_methods"] if "gift" not in m)
    third_id = next(
        o for o, order in world["orders"].items() if order["status"] == "pending" and o not in (pending_id, second_id)
    )
    delivered_id, delivered, _ = _pick(world, "delivered")
    old_d, new_d = _swap(world, delivered)
    d_method = next(m for m in world["users"][delivered["user_id"]]["payment_methods"] if "gift" not in m)
    returned_id = next(
        o for o, order in world["orders"].items() if order["status"] == "delivered" and o != delivered_id
    )
    returned = world["orders"][returned_id]
    steps = [
        (
            "modify_pending_order_items",
            {"order_id": second_id, "item_ids": [old], "new_item_ids": [new], "payment_method_id": method},
        ),
        ("cancel_pending_order", {"order_id": third_id, "reason": "no longer needed"}),
        (
            "exchange_delivered_order_items",
            {"order_id": delivered_id, "item_ids": [old_d], "new_item_ids": [new_d], "payment_method_id": d_method},
        ),
        (
            "return_delivered_order_items",
            {
                "order_id": returned_id,
                "item_ids": [returned["items"][0]["item_id"]],
                "payment_method_id": returned["payment_history"][0]["payment_method_id"],
            },
        ),
    ]
    for name_, arguments in steps:
        hash_before = env.state_hash()
        observation = env.call_tool(name_, arguments)
        assert not observation.startswith("Error"), (name_, observation)
        assert env.state_hash() != hash_before
    assert world["orders"][second_id]["status"] == "pending (item modified)"
    assert world["orders"][third_id]["status"] == "cancelled"
    assert world["orders"][delivered_id]["status"] == "exchange requested"
    assert world["orders"][returned_id]["status"] == "return requested"
    assert env.state_hash() != before == make_env("retail", {"seed": 7, "num_orders": 120}).state_hash()
    assert env.state_hash() == consistent_hash(copy.deepcopy(env.data))


@pytest.mark.parametrize(
    "config, message",
    [
        ({"num_products": len(CATALOG) + 1}, "num_products"),
        ({"num_users": 0}, "num_users"),
        ({"seed": "one"}, "seed must be an integer"),
        ({"num_orders": 2.5}, "num_orders must be an integer"),
    ],
)
def test_bad_generator_options_name_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        make_env("retail", config)
