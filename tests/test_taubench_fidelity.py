"""tau-bench v1 fidelity of what an agent sees: every expected observation below was produced by tau-bench itself
(its `Env.step`: `invoke(data=data, **kwargs)`, exceptions shown as "Error: <exception>") on the same data, under
CPython 3.11. Messages that Python itself writes (a missing argument, an unhashable id) are the interpreter's, in
tau-bench and here alike. See docs/environments.md, "tau-bench tool outputs and errors".
"""

import json
import time

import pytest

from selfchallenge.envs import make_env
from selfchallenge.envs.taubench import ToolError

PENDING, PENDING_CARD = "#W5918442", "credit_card_5051208"  # sofia_rossi_8776, paid by that card
DELIVERED, DELIVERED_GIFT_CARD = "#W4817420", "gift_card_8168843"  # ava_moore_2033
RESERVATION, RESERVATION_GIFT_CARD = "4WQ150", "gift_card_3576581"  # chen_jackson_3290, business, DFW-LAX-DFW


@pytest.fixture(scope="module")
def retail_config(shared_data):
    return {"data_dir": str(shared_data / "taubench" / "retail")}


@pytest.fixture(scope="module")
def airline_config(shared_data):
    return {"data_dir": str(shared_data / "taubench" / "airline")}


def _booking(**changes):
    arguments = {
        "user_id": "mia_li_3668",
        "origin": "JFK",
        "destination": "SEA",
        "flight_type": "one_way",
        "cabin": "economy",
        "flights": [],
        "passengers": [],
        "payment_methods": [],
        "total_baggages": 0,
        "nonfree_baggages": 0,
        "insurance": "no",
    }
    arguments.update(changes)
    return arguments


RETAIL_CALLS = [
    # Python's argument errors name tau-bench's tool class, as `invoke(data=data, **kwargs)` does.
    ("get_user_details", {}, "Error: GetUserDetails.invoke() missing 1 required positional argument: 'user_id'"),
    (
        "cancel_pending_order",
        {},
        "Error: CancelPendingOrder.invoke() missing 2 required positional arguments: 'order_id' and 'reason'",
    ),
    (
        "cancel_pending_order",
        {"order_id": PENDING},
        "Error: CancelPendingOrder.invoke() missing 1 required positional argument: 'reason'",
    ),
    (
        "get_order_details",
        {"order_id": PENDING, "foo": 1},
        "Error: GetOrderDetails.invoke() got an unexpected keyword argument 'foo'",
    ),
    (
        "get_order_details",
        {"order_id": PENDING, "data": {}},
        "Error: tau_bench.envs.retail.tools.get_order_details.GetOrderDetails.invoke() got multiple values for "
        "keyword argument 'data'",
    ),
    (
        "transfer_to_human_agents",
        {"summary": "x", "data": 1},
        "Error: tau_bench.envs.retail.tools.transfer_to_human_agents.TransferToHumanAgents.invoke() got multiple "
        "values for keyword argument 'data'",
    ),
    (
        "list_all_product_types",
        {"foo": 1},
        "Error: ListAllProductTypes.invoke() got an unexpected keyword argument 'foo'",
    ),
    ("think", {}, "Error: Think.invoke() missing 1 required positional argument: 'thought'"),
    # Ids of the wrong type: lists and dicts cannot be looked up, other values are simply not found.
    ("cancel_pending_order", {"order_id": [PENDING], "reason": "no longer needed"}, "Error: unhashable type: 'list'"),
    ("get_user_details", {"user_id": {"sofia_rossi_8776": 1}}, "Error: unhashable type: 'dict'"),
    ("get_order_details", {"order_id": []}, "Error: unhashable type: 'list'"),
    (
        "modify_pending_order_payment",
        {"order_id": PENDING, "payment_method_id": [PENDING_CARD]},
        "Error: unhashable type: 'list'",
    ),
    (
        "modify_user_address",
        {"user_id": [], "address1": "a", "address2": "b", "city": "c", "state": "d", "country": "e", "zip": "f"},
        "Error: unhashable type: 'list'",
    ),
    ("get_product_details", {"product_id": None}, "Error: product not found"),
    ("get_product_details", {"product_id": 6858788497}, "Error: product not found"),
    ("find_user_id_by_email", {"email": None}, "Error: 'NoneType' object has no attribute 'lower'"),
    ("find_user_id_by_email", {"email": " noah.brown7922@example.com"}, "Error: user not found"),
    ("find_user_id_by_email", {"email": "NOAH.BROWN7922@EXAMPLE.COM"}, "noah_brown_6181"),
    ("find_user_id_by_name_zip", {"first_name": "Noah", "last_name": "Brown", "zip": 80279}, "Error: user not found"),
    # Item lists of the wrong type fail where tau-bench's code first touches them.
    (
        "modify_pending_order_items",
        {"order_id": PENDING, "item_ids": "1725100896", "new_item_ids": "x", "payment_method_id": PENDING_CARD},
        "Error: 1 not found",
    ),
    (
        "modify_pending_order_items",
        {"order_id": PENDING, "item_ids": 7, "new_item_ids": [], "payment_method_id": PENDING_CARD},
        "Error: 'int' object is not iterable",
    ),
    (
        "modify_pending_order_items",
        {"order_id": PENDING, "item_ids": ["5312063289"], "new_item_ids": [["x"]], "payment_method_id": PENDING_CARD},
        "Error: unhashable type: 'list'",
    ),
    (
        "return_delivered_order_items",
        {"order_id": DELIVERED, "item_ids": None, "payment_method_id": DELIVERED_GIFT_CARD},
        "Error: 'NoneType' object is not iterable",
    ),
    (
        "exchange_delivered_order_items",
        {
            "order_id": DELIVERED,
            "item_ids": {"6777246137": 1},
            "new_item_ids": [],
            "payment_method_id": DELIVERED_GIFT_CARD,
        },
        "Error: 'dict' object has no attribute 'count'",
    ),
    ("refund_everything", {}, "Unknown action refund_everything"),
]


@pytest.mark.parametrize("name, arguments, observation", RETAIL_CALLS)
def test_retail_observations_are_tau_benchs(retail_config, name, arguments, observation):
    assert make_env("retail", retail_config).call_tool(name, arguments) == observation


AIRLINE_CALLS = [
    # The flight number is checked before the segment's date is read.
    ("book_reservation", _booking(flights=[{"flight_number": "HAT999"}]), "Error: flight HAT999 not found"),
    (
        "book_reservation",
        _booking(cabin="first", flights=[{"flight_number": "HAT136", "date": "2024-05-20"}], passengers=[{}]),
        "Error: 'first'",
    ),
    (
        "book_reservation",
        {"user_id": "mia_li_3668"},
        "Error: BookReservation.invoke() missing 10 required positional arguments: 'origin', 'destination', "
        "'flight_type', 'cabin', 'flights', 'passengers', 'payment_methods', 'total_baggages', 'nonfree_baggages', "
        "and 'insurance'",
    ),
    ("book_reservation", _booking(user_id=["mia_li_3668"]), "Error: unhashable type: 'list'"),
    ("book_reservation", _booking(nonfree_baggages="1"), "Error: unsupported operand type(s) for +=: 'int' and 'str'"),
    (
        "update_reservation_flights",
        {
            "reservation_id": RESERVATION,
            "cabin": "business",
            "flights": [{"flight_number": "HAT999"}],
            "payment_id": "x",
        },
        "Error: flight HAT999 not found",
    ),
    (  # a flight number of the reservation: the kept-segment check reads the date
        "update_reservation_flights",
        {
            "reservation_id": RESERVATION,
            "cabin": "business",
            "flights": [{"flight_number": "HAT170"}],
            "payment_id": "x",
        },
        "Error: 'date'",
    ),
    ("get_reservation_details", {"reservation_id": [RESERVATION]}, "Error: unhashable type: 'list'"),
    ("get_reservation_details", {"reservation_id": RESERVATION.lower()}, "Error: user not found"),
    ("cancel_reservation", {"reservation_id": {}}, "Error: unhashable type: 'dict'"),
    (
        "search_direct_flight",
        {"origin": "DFW", "destination": "LAX", "date": ["2024-05-20"]},
        "Error: unhashable type: 'list'",
    ),
    ("search_direct_flight", {"origin": "JFK", "destination": "LAX", "date": ["2024-05-20"]}, "[]"),  # no such route
    ("search_direct_flight", {"origin": "DFW", "destination": "LAX", "date": "2024-05-32"}, "[]"),
    (  # HAT002 LGA-PHX lands after midnight, so the second leg's day is computed from the date
        "search_onestop_flight",
        {"origin": "LGA", "destination": "SFO", "date": "2024-05-ab"},
        "Error: invalid literal for int() with base 10: 'ab'",
    ),
    (
        "search_onestop_flight",
        {"origin": "LGA", "destination": "SFO", "date": 20},
        "Error: 'int' object is not subscriptable",
    ),
    (
        "update_reservation_baggages",
        {
            "reservation_id": RESERVATION,
            "total_baggages": 3,
            "nonfree_baggages": "3",
            "payment_id": RESERVATION_GIFT_CARD,
        },
        "Error: unsupported operand type(s) for -: 'str' and 'int'",
    ),
    (
        "update_reservation_passengers",
        {"reservation_id": RESERVATION, "passengers": 5},
        "Error: object of type 'int' has no len()",
    ),
    (
        "send_certificate",
        {"user_id": "chen_jackson_3290"},
        "Error: SendCertificate.invoke() missing 1 required positional argument: 'amount'",
    ),
    (
        "send_certificate",
        {"user_id": "chen_jackson_3290", "amount": 100, "reason": "x"},
        "Error: SendCertificate.invoke() got an unexpected keyword argument 'reason'",
    ),
    (
        "list_all_airports",
        {"data": None},
        "Error: tau_bench.envs.airline.tools.list_all_airports.ListAllAirports.invoke() got multiple values for "
        "keyword argument 'data'",
    ),
]


@pytest.mark.parametrize("name, arguments, observation", AIRLINE_CALLS)
def test_airline_observations_are_tau_benchs(airline_config, name, arguments, observation):
    assert make_env("airline", airline_config).call_tool(name, arguments) == observation


CALCULATIONS = [
    (" 2 + 2", "4.0"),  # eval() drops leading spaces
    ("2+2  ", "4.0"),
    ("(389 + 120) * 3 - 0.005", "1526.99"),
    ("5.", "5.0"),
    (".5", "0.5"),
    ("00", "0.0"),
    ("-" * 999 + "1", "-1.0"),  # deep, but the compiler accepts it
    ("1" + " * 99" * 1000, "Error: int too large to convert to float"),
    ("2**2**20", "Error: int too large to convert to float"),
    ("2**1023*2.0", "inf"),
    ("10.0**400", "Error: (34, 'Numerical result out of range')"),
    ("1/0", "Error: division by zero"),
    ("1//0", "Error: integer division or modulo by zero"),
    ("1.0//0", "Error: float floor division by zero"),
    ("0**-1", "Error: 0.0 cannot be raised to a negative power"),
    ("1 +", "Error: invalid syntax (<string>, line 1)"),
    ("1 2", "Error: invalid syntax (<string>, line 1)"),
    ("(1", "Error: '(' was never closed (<string>, line 1)"),
    (
        "01",
        "Error: leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers (<string>, line 1)",
    ),
    ("(*())", "Error: cannot use starred expression here (<string>, line 1)"),
    ("(" * 250 + "1" + ")" * 250, "Error: too many nested parentheses (<string>, line 1)"),
    ("(1)(2)", "Error: 'int' object is not callable"),
    ("()()", "Error: 'tuple' object is not callable"),
    ("(1)(*5)", "Error: 1 argument after * must be an iterable, not int"),
    ("(1)(1/0)", "Error: division by zero"),
    ("()", "Error: float() argument must be a string or a real number, not 'tuple'"),
    ("...", "Error: float() argument must be a string or a real number, not 'ellipsis'"),
    ("...+1", "Error: unsupported operand type(s) for +: 'ellipsis' and 'int'"),
    ("-()", "Error: bad operand type for unary -: 'tuple'"),
    ("()*(10**100)", "Error: cannot fit 'int' into an index-sized integer"),
    ("abs(1)", "Error: invalid characters in expression"),
    ("2^3", "Error: invalid characters in expression"),
    ("\uff12+\uff12", "Error: invalid characters in expression"),  # full-width digits
    (None, "Error: 'NoneType' object is not iterable"),
    (12, "Error: 'int' object is not iterable"),
    (["1", "+", "1"], "Error: eval() arg 1 must be a string, bytes or code object"),
    (["12"], "Error: eval() arg 1 must be a string, bytes or code object"),  # "12" is a substring of the allowed set
    ([1], "Error: 'in <string>' requires string as left operand, not int"),
]


@pytest.mark.parametrize("expression, observation", CALCULATIONS)
def test_calculate_observations_are_tau_benchs(retail_config, expression, observation):
    assert make_env("retail", retail_config).call_tool("calculate", {"expression": expression}) == observation


def test_calculate_is_the_same_in_both_domains(retail_config, airline_config):
    for expression in (" 2 + 2", "(1)(2)", "9**9**9"):
        arguments = {"expression": expression}
        retail = make_env("retail", retail_config).call_tool("calculate", arguments)
        assert make_env("airline", airline_config).call_tool("calculate", arguments) == retail


def test_calculate_safety_bound_answers_at_once(retail_config):
    """Deliberate difference: integers past 100,000 bits are refused at once. tau-bench's eval never returns on
    `9**9**9**9` and would compute `2**200000//2**199999` to 2.0; we say what its float() says past 1,024 bits."""
    env = make_env("retail", retail_config)
    started = time.monotonic()
    for expression in ("9**9**9**9", "9**9**9", "2**200000//2**199999", "(2**50001)**2"):
        assert env.call_tool("calculate", {"expression": expression}) == "Error: int too large to convert to float"
    assert env.call_tool("calculate", {"expression": "2**99999//2**99998"}) == "2.0"  # within the bound: exact
    assert time.monotonic() - started < 2.0


def test_a_booking_that_fails_half_way_leaves_what_tau_bench_leaves(airline_config):
    """The same certificate twice: the first use deletes it, the second raises KeyError. Like tau-bench, the
    deletion stays and no reservation is made (and the database hash is the same as tau-bench's)."""
    env = make_env("airline", airline_config)
    flights = [{"flight_number": "HAT136", "date": "2024-05-20"}, {"flight_number": "HAT039", "date": "2024-05-20"}]
    certificate = {"payment_id": "certificate_7504069", "amount": 125}
    arguments = _booking(
        flights=flights,
        passengers=[{"first_name": "Mia", "last_name": "Li", "dob": "1990-04-05"}],
        payment_methods=[certificate, certificate, {"payment_id": "credit_card_4421486", "amount": 5}],
    )
    assert env.call_tool("book_reservation", arguments) == "Error: 'certificate_7504069'"
    assert "certificate_7504069" not in env.data["users"]["mia_li_3668"]["payment_methods"]
    assert "HATHAT" not in env.data["reservations"]


def test_a_fourth_certificate_is_refused_where_tau_bench_returns_none(airline_config):
    """Deliberate difference: tau-bench's send_certificate returns None once its three fixed ids are taken (its
    Env.step then fails to build the response); we answer with an error and change nothing."""
    env = make_env("airline", airline_config)
    for number in (3221322, 3221323, 3221324):
        expected = f"Certificate certificate_{number} added to user chen_jackson_3290 with amount 50."
        assert env.call_tool("send_certificate", {"user_id": "chen_jackson_3290", "amount": 50}) == expected
    before = env.state_hash()
    fourth = env.call_tool("send_certificate", {"user_id": "chen_jackson_3290", "amount": 50})
    assert fourth == "Error: user chen_jackson_3290 already holds the certificates this tool can issue"
    assert env.state_hash() == before


def test_positional_calls_and_programs_keep_their_own_forms(retail_config):
    """A list of arguments (our extension) is positional; programs call plain functions that raise ToolError."""
    env = make_env("retail", retail_config)
    assert json.loads(env.call_tool("get_order_details", [PENDING]))["order_id"] == PENDING
    assert env.call_tool("get_order_details", [PENDING, 1]) == (
        "Error: GetOrderDetails.invoke() takes 2 positional arguments but 3 were given"
    )
    tools = env.tools()
    with pytest.raises(ToolError, match="^order not found$"):
        tools["get_order_details"]("#W0000000")
    with pytest.raises(TypeError, match=r"^get_order_details\(\) missing 1 required positional argument"):
        tools["get_order_details"]()
