"""The airline environment: tool semantics and v1 quirks, schemas, world loading, the generator."""

import copy
import inspect
import json
import time
from pathlib import Path

import pytest

from selfchallenge.envs import make_env
from selfchallenge.envs.airline import tools as airline
from selfchallenge.envs.airline.generator import generate_world
from selfchallenge.envs.base import consistent_hash
from selfchallenge.envs.taubench import ToolError

TOOL_NAMES = [
    "book_reservation",
    "calculate",
    "cancel_reservation",
    "get_reservation_details",
    "get_user_details",
    "list_all_airports",
    "search_direct_flight",
    "search_onestop_flight",
    "send_certificate",
    "think",
    "transfer_to_human_agents",
    "update_reservation_baggages",
    "update_reservation_flights",
    "update_reservation_passengers",
]
PASSENGERS = [
    {"first_name": "Ann", "last_name": "Lee", "dob": "1990-01-01"},
    {"first_name": "Bo", "last_name": "Lee", "dob": "1992-02-02"},
]


def _open(economy_price, seats=9):
    return {
        "status": "available",
        "available_seats": {"basic_economy": seats, "economy": seats, "business": seats},
        "prices": {"basic_economy": economy_price // 2, "economy": economy_price, "business": economy_price * 3},
    }


def _flight(number, origin, destination, departure, arrival, dates):
    return {
        "flight_number": number,
        "origin": origin,
        "destination": destination,
        "scheduled_departure_time_est": departure,
        "scheduled_arrival_time_est": arrival,
        "dates": dates,
    }


def small_world():
    return {
        "flights": {
            "HAT001": _flight(
                "HAT001", "AAA", "BBB", "22:00:00", "01:00:00+1", {"2024-05-01": _open(100), "2024-05-09": _open(100)}
            ),
            "HAT002": _flight(
                "HAT002",
                "BBB",
                "CCC",
                "08:00:00",
                "10:00:00",
                {"2024-05-02": _open(150), "2024-05-09": _open(111), "2024-05-10": _open(222)},
            ),
            "HAT003": _flight(
                "HAT003",
                "AAA",
                "CCC",
                "09:00:00",
                "12:00:00",
                {"2024-05-09": _open(300, seats=1), "2024-05-10": {"status": "cancelled"}},
            ),
            "HAT004": _flight("HAT004", "AAA", "BBB", "06:00:00", "07:00:00", {"2024-05-09": {"status": "delayed"}}),
            "HAT005": _flight("HAT005", "AAA", "BBB", "10:00:00", "12:00:00", {"2024-05-09": _open(50)}),
        },
        "users": {
            "ann_lee_1": {
                "name": {"first_name": "Ann", "last_name": "Lee"},
                "address": {
                    "address1": "1 Main St",
                    "address2": "",
                    "city": "Austin",
                    "country": "USA",
                    "state": "TX",
                    "zip": "78701",
                },
                "email": "ann@example.com",
                "dob": "1990-01-01",
                "payment_methods": {
                    "credit_card_1": {
                        "source": "credit_card",
                        "brand": "visa",
                        "last_four": "1111",
                        "id": "credit_card_1",
                    },
                    "gift_card_1": {"source": "gift_card", "amount": 100, "id": "gift_card_1"},
                    "certificate_1": {"source": "certificate", "amount": 500, "id": "certificate_1"},
                },
                "saved_passengers": [PASSENGERS[1]],
                "membership": "gold",
                "reservations": ["RES001"],
            }
        },
        "reservations": {
            "RES001": {
                "reservation_id": "RES001",
                "user_id": "ann_lee_1",
                "origin": "AAA",
                "destination": "CCC",
                "flight_type": "one_way",
                "cabin": "economy",
                "flights": [
                    {
                        "origin": "AAA",
                        "destination": "BBB",
                        "flight_number": "HAT001",
                        "date": "2024-05-09",
                        "price": 80,
                    },
                    {
                        "origin": "BBB",
                        "destination": "CCC",
                        "flight_number": "HAT002",
                        "date": "2024-05-10",
                        "price": 90,
                    },
                ],
                "passengers": copy.deepcopy(PASSENGERS),
                "payment_history": [{"payment_id": "credit_card_1", "amount": 390}],
                "created_at": "2024-05-01T10:00:00",
                "total_baggages": 3,
                "nonfree_baggages": 1,
                "insurance": "no",
            }
        },
    }


def refused(call, message):
    with pytest.raises(ToolError) as caught:
        call()
    assert str(caught.value) == message


def _book(data, flights, payments, **overrides):
    arguments = {
        "user_id": "ann_lee_1", "origin": "AAA", "destination": "CCC", "flight_type": "one_way", "cabin": "economy",
        "flights": flights, "passengers": PASSENGERS, "payment_methods": payments, "total_baggages": 2,
        "nonfree_baggages": 1, "insurance": "yes",
    }  # fmt: skip
    arguments.update(overrides)
    return airline.book_reservation(data, **arguments)


@pytest.fixture(scope="module")
def real_config(shared_data):
    return {"data_dir": str(shared_data / "taubench" / "airline")}


# --- tools on a hand-made world ---------------------------------------------------------------------------


def test_book_prices_pays_and_uses_fixed_ids_without_taking_seats():
    data = small_world()
    legs = [{"flight_number": "HAT001", "date": "2024-05-09"}, {"flight_number": "HAT002", "date": "2024-05-10"}]
    total = (100 + 222) * 2 + 30 * 2 + 50  # fares x passengers + insurance + one non-free bag = 754
    refused(
        lambda: _book(data, legs, [{"payment_id": "credit_card_1", "amount": 700}]),
        f"payment amount does not add up, total price is {total}, but paid 700",
    )
    refused(
        lambda: _book(
            data, legs, [{"payment_id": "gift_card_1", "amount": 101}, {"payment_id": "credit_card_1", "amount": 653}]
        ),
        "not enough balance in payment method gift_card_1",
    )
    refused(
        lambda: _book(data, legs, [{"payment_id": "paypal_1", "amount": total}]), "payment method paypal_1 not found"
    )
    refused(lambda: _book(data, legs, [], user_id="nobody"), "user not found")
    assert data == small_world()
    payments = [
        {"payment_id": "certificate_1", "amount": 200},
        {"payment_id": "gift_card_1", "amount": 40},
        {"payment_id": "credit_card_1", "amount": total - 240},
    ]
    booked = json.loads(_book(data, legs, payments))
    assert booked["reservation_id"] == "HATHAT" and booked["created_at"] == "2024-05-15T15:00:00"
    assert booked["flights"][1] == {
        "flight_number": "HAT002", "date": "2024-05-10", "price": 222, "origin": "BBB", "destination": "CCC",
    }  # fmt: skip
    assert data["reservations"]["HATHAT"]["payment_history"] == payments
    methods = data["users"]["ann_lee_1"]["payment_methods"]
    assert "certificate_1" not in methods  # used up whole although only 200 of 500 was paid
    assert methods["gift_card_1"]["amount"] == 60
    assert data["users"]["ann_lee_1"]["reservations"] == ["RES001", "HATHAT"]
    assert data["flights"] == small_world()["flights"]  # v1 does not take seats
    one_leg = [{"flight_number": "HAT005", "date": "2024-05-09"}]
    second = json.loads(
        _book(data, one_leg, [{"payment_id": "credit_card_1", "amount": 100}], insurance="no", nonfree_baggages=0)
    )
    assert second["reservation_id"] == "HATHAU"


@pytest.mark.parametrize(
    "legs, message",
    [
        ([{"flight_number": "HAT999", "date": "2024-05-09"}], "flight HAT999 not found"),
        ([{"flight_number": "HAT003", "date": "2024-06-01"}], "flight HAT003 not found on date 2024-06-01"),
        ([{"flight_number": "HAT003", "date": "2024-05-10"}], "flight HAT003 not available on date 2024-05-10"),
        ([{"flight_number": "HAT003", "date": "2024-05-09"}], "not enough seats on flight HAT003"),
    ],
)
def test_booking_and_changing_flights_refuse_unbookable_flights(legs, message):
    data = small_world()
    refused(lambda: _book(data, legs, []), message)
    refused(lambda: airline.update_reservation_flights(data, "RES001", "economy", legs, "credit_card_1"), message)


def test_update_flights_keeps_old_prices_only_in_the_same_cabin_and_never_updates_the_cabin():
    data = small_world()
    legs = [{"flight_number": "HAT001", "date": "2024-05-09"}, {"flight_number": "HAT002", "date": "2024-05-09"}]
    updated = json.loads(airline.update_reservation_flights(data, "RES001", "economy", legs, "gift_card_1"))
    difference = (80 + 111) * 2 - (80 + 90) * 2  # HAT001 keeps its old 80; HAT002 on a new date costs 111
    assert [f["price"] for f in updated["flights"]] == [80, 111]
    assert updated["payment_history"][-1] == {"payment_id": "gift_card_1", "amount": difference}
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["amount"] == 100 - difference
    data = small_world()
    upgraded = json.loads(airline.update_reservation_flights(data, "RES001", "business", legs, "credit_card_1"))
    assert [f["price"] for f in upgraded["flights"]] == [300, 333]  # every segment repriced in business
    assert upgraded["cabin"] == "economy"  # v1 quirk
    assert upgraded["payment_history"][-1]["amount"] == (300 + 333) * 2 - (80 + 90) * 2
    refused(
        lambda: airline.update_reservation_flights(small_world(), "RES001", "business", legs, "certificate_1"),
        "certificate cannot be used to update reservation",
    )
    refused(
        lambda: airline.update_reservation_flights(small_world(), "RES001", "business", legs, "gift_card_1"),
        "gift card balance is not enough",
    )
    refused(
        lambda: airline.update_reservation_flights(small_world(), "RES001", "economy", legs, "paypal"),
        "payment method not found",
    )
    refused(
        lambda: airline.update_reservation_flights(small_world(), "NOPE", "economy", legs, "x"), "reservation not found"
    )
    data = small_world()
    same = data["reservations"]["RES001"]["flights"]
    airline.update_reservation_flights(data, "RES001", "economy", same, "credit_card_1")
    assert (
        data["reservations"]["RES001"]["payment_history"] == small_world()["reservations"]["RES001"]["payment_history"]
    )


def test_baggage_passenger_certificate_and_cancel_tools():
    data = small_world()
    refused(
        lambda: airline.update_reservation_baggages(data, "RES001", 5, 3, "certificate_1"),
        "certificate cannot be used to update reservation",
    )
    refused(
        lambda: airline.update_reservation_baggages(data, "RES001", 5, 4, "gift_card_1"),
        "gift card balance is not enough",
    )
    updated = json.loads(airline.update_reservation_baggages(data, "RES001", 5, 3, "gift_card_1"))
    assert (updated["total_baggages"], updated["nonfree_baggages"]) == (5, 3)
    assert updated["payment_history"][-1] == {"payment_id": "gift_card_1", "amount": 100}
    assert data["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["amount"] == 0
    fewer = json.loads(airline.update_reservation_baggages(data, "RES001", 1, 0, "credit_card_1"))
    assert len(fewer["payment_history"]) == 2 and fewer["nonfree_baggages"] == 0  # no charge, no entry
    refused(
        lambda: airline.update_reservation_passengers(data, "RES001", PASSENGERS[:1]),
        "number of passengers does not match",
    )
    renamed = [dict(PASSENGERS[0], first_name="Anne"), PASSENGERS[1]]
    assert json.loads(airline.update_reservation_passengers(data, "RES001", renamed))["passengers"] == renamed
    for number in ("3221322", "3221323", "3221324"):
        message = airline.send_certificate(data, "ann_lee_1", 150)
        assert message == f"Certificate certificate_{number} added to user ann_lee_1 with amount 150."
    assert data["users"]["ann_lee_1"]["payment_methods"]["certificate_3221323"] == {
        "source": "certificate", "amount": 150, "id": "certificate_3221323",
    }  # fmt: skip
    with pytest.raises(ToolError):
        airline.send_certificate(data, "ann_lee_1", 150)
    cancelled = json.loads(airline.cancel_reservation(data, "RES001"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["payment_history"] == [
        {"payment_id": "credit_card_1", "amount": 390},
        {"payment_id": "gift_card_1", "amount": 100},
        {"payment_id": "credit_card_1", "amount": -390},
        {"payment_id": "gift_card_1", "amount": -100},
    ]
    refused(lambda: airline.cancel_reservation(data, "NOPE"), "reservation not found")


def test_reads_and_searches_including_the_one_stop_quirks():
    data = small_world()
    refused(lambda: airline.get_reservation_details(data, "NOPE"), "user not found")  # sic, as tau-bench
    refused(lambda: airline.get_user_details(data, "nobody"), "user not found")
    airports = json.loads(airline.list_all_airports(data))
    assert len(airports) == 20 and airports["LGA"] == "LaGuardia" and airports["JFK"] == "New York"
    direct = json.loads(airline.search_direct_flight(data, "AAA", "BBB", "2024-05-09"))
    assert [f["flight_number"] for f in direct] == ["HAT001", "HAT005"]  # HAT004 is delayed
    assert "dates" not in direct[0] and direct[0]["prices"]["economy"] == 100
    assert direct[0]["scheduled_arrival_time_est"] == "01:00:00+1"
    pairs = json.loads(airline.search_onestop_flight(data, "AAA", "CCC", "2024-05-09"))
    # HAT001 lands after midnight, so leg 2 flies on the 10th; HAT005 lands after HAT002 leaves; HAT004 is delayed.
    assert [[leg["flight_number"] for leg in pair] for pair in pairs] == [["HAT001", "HAT002"]]
    first, second = pairs[0]
    assert (first["date"], second["date"]) == ("2024-05-09", "2024-05-10")
    assert second["prices"]["economy"] == 111  # leg 2 shows its record on leg 1's date (the 10th costs 222)
    # The next day is not zero-padded: "2024-05-2" is not a date, so this connection is never found.
    assert json.loads(airline.search_onestop_flight(data, "AAA", "CCC", "2024-05-01")) == []


def test_calculate_and_trivial_tools(real_config):
    env = make_env("airline", real_config)
    assert env.call_tool("calculate", {"expression": "(389 + 120) * 3 - 0.005"}) == "1526.99"
    assert env.call_tool("think", {"thought": "x"}) == ""
    assert env.call_tool("transfer_to_human_agents", {"summary": "x"}) == "Transfer successful"


# --- the environment on the benchmark data ----------------------------------------------------------------


def test_tools_schemas_and_policy(real_config):
    env = make_env("airline", real_config)
    assert list(env.tools()) == TOOL_NAMES and env.terminate_tools == {"transfer_to_human_agents"}
    specs = env.tool_specs()
    assert [spec["function"]["name"] for spec in specs] == TOOL_NAMES
    for spec in specs:
        parameters = spec["function"]["parameters"]
        names = list(inspect.signature(env.tools()[spec["function"]["name"]]).parameters)
        assert list(parameters["properties"]) == names and parameters["required"] == names
    book = specs[0]["function"]["parameters"]["properties"]
    assert book["cabin"]["enum"] == ["basic_economy", "economy", "business"]
    assert book["flight_type"]["enum"] == ["one_way", "round_trip"] and book["insurance"]["enum"] == ["yes", "no"]
    assert book["payment_methods"]["items"]["properties"]["amount"]["type"] == "number"
    assert book["payment_methods"]["items"]["required"] == ["payment_id", "amount"]
    assert book["total_baggages"]["type"] == "integer"
    # the benchmark's data folder holds its own policy document: the agent's system prompt is that, verbatim
    assert env.describe() == (Path(real_config["data_dir"]) / "wiki.md").read_text()
    policy = make_env("airline", {"seed": 0}).describe()  # a generated world gets the paraphrased policy
    for rule in ("2024-05-15 15:00:00 EST", "five passengers", "$50", "$30", "Basic economy", "$100"):
        assert rule.lower() in policy.lower()


def test_real_world_reads_are_whole_and_worlds_are_fresh(real_config):
    env = make_env("airline", real_config)
    results = env.call_tool("search_onestop_flight", {"origin": "JFK", "destination": "SEA", "date": "2024-05-20"})
    assert len(results) > 2000 and len(json.loads(results)) > 1
    assert env.call_tool("get_reservation_details", {"reservation_id": "XXXXXX"}) == "Error: user not found"
    initial = env.state_hash()
    reservation_id = next(iter(env.data["reservations"]))
    env.call_tool("cancel_reservation", {"reservation_id": reservation_id})
    assert env.state_hash() != initial == make_env("airline", real_config).state_hash()
    env.reset()
    assert env.state_hash() == initial and "status" not in env.data["reservations"][reservation_id]
    started = time.perf_counter()
    make_env("airline", real_config)
    assert time.perf_counter() - started < 1.0  # measured ~0.06 s; generous for loaded machines


# --- generated worlds -------------------------------------------------------------------------------------


def test_generator_is_deterministic_varied_and_fast():
    started = time.perf_counter()
    world = generate_world(seed=0)
    assert time.perf_counter() - started < 1.0
    assert consistent_hash(world) == consistent_hash(generate_world(seed=0)) != consistent_hash(generate_world(seed=1))
    assert make_env("airline", {}).state_hash() == consistent_hash(world)
    assert (len(world["users"]), len(world["flights"]), len(world["reservations"])) == (40, 60, 100)
    for seed in (0, 1, 2):
        small = generate_world(seed=seed, num_users=3, num_flights=3, num_reservations=10)
        statuses = {record["status"] for flight in small["flights"].values() for record in flight["dates"].values()}
        assert statuses == {"available", "landed", "cancelled", "on time", "delayed", "flying"}
        assert any(f["scheduled_arrival_time_est"].endswith("+1") for f in small["flights"].values())
        assert {u["membership"] for u in small["users"].values()} == {"regular", "silver", "gold"}
    reservations = list(world["reservations"].values())
    assert {r["flight_type"] for r in reservations} == {"one_way", "round_trip"}
    assert {r["cabin"] for r in reservations} == {"basic_economy", "economy", "business"}
    assert {len(r["flights"]) for r in reservations} >= {1, 2}
    assert {r["insurance"] for r in reservations} == {"yes", "no"}
    assert any(r.get("status") == "cancelled" for r in reservations)
    sources = {m["source"] for u in world["users"].values() for m in u["payment_methods"].values()}
    assert sources == {"credit_card", "gift_card", "certificate"}
    assert set(world["flights"]["HAT010"]["dates"]) == {f"2024-05-{day:02d}" for day in range(1, 31)}


def test_generated_reservations_are_consistent():
    world = generate_world(seed=3, num_reservations=200)
    for reservation_id, r in world["reservations"].items():
        assert reservation_id not in ("HATHAT", "HATHAU", "HATHAV") and len(reservation_id) == 6
        user = world["users"][r["user_id"]]
        assert reservation_id in user["reservations"] and 1 <= len(r["passengers"]) <= 5
        fares = 0
        for segment in r["flights"]:
            flight = world["flights"][segment["flight_number"]]
            assert (segment["origin"], segment["destination"]) == (flight["origin"], flight["destination"])
            assert segment["date"] in flight["dates"]
            fares += segment["price"]
        assert r["flights"][0]["origin"] == r["origin"]
        total = fares * len(r["passengers"]) + (30 * len(r["passengers"]) if r["insurance"] == "yes" else 0)
        total += 50 * r["nonfree_baggages"]
        paid = sum(p["amount"] for p in r["payment_history"])
        assert paid == (0 if r.get("status") == "cancelled" else total)
        assert all(p["payment_id"] in user["payment_methods"] for p in r["payment_history"])
        assert r["created_at"] < "2024-05-15T15:00:00" and r["created_at"] < r["flights"][0]["date"]
        assert r["nonfree_baggages"] <= r["total_baggages"]


def test_every_write_tool_works_on_a_generated_world():
    env = make_env("airline", {"seed": 4})
    data = env.data
    user_id, user = next(
        (uid, u) for uid, u in data["users"].items() if any("credit_card" in m for m in u["payment_methods"])
    )
    card = next(m for m in user["payment_methods"] if m.startswith("credit_card"))
    bookable = next(
        (flight, date)
        for flight in data["flights"].values()
        for date, record in sorted(flight["dates"].items())
        if record["status"] == "available" and record["available_seats"]["economy"] >= 2
    )
    flight, date = bookable
    found = json.loads(
        env.call_tool(
            "search_direct_flight", {"origin": flight["origin"], "destination": flight["destination"], "date": date}
        )
    )
    assert flight["flight_number"] in [f["flight_number"] for f in found]
    price = flight["dates"][date]["prices"]["economy"]
    passengers = [{"first_name": "Ann", "last_name": "Lee", "dob": "1990-01-01"}] * 2
    booking = {
        "user_id": user_id, "origin": flight["origin"], "destination": flight["destination"], "flight_type": "one_way",
        "cabin": "economy", "flights": [{"flight_number": flight["flight_number"], "date": date}],
        "passengers": passengers, "payment_methods": [{"payment_id": card, "amount": price * 2 + 60}],
        "total_baggages": 1, "nonfree_baggages": 0, "insurance": "yes",
    }  # fmt: skip
    steps = [
        ("book_reservation", booking),
        (
            "update_reservation_baggages",
            {"reservation_id": "HATHAT", "total_baggages": 3, "nonfree_baggages": 1, "payment_id": card},
        ),
        (
            "update_reservation_flights",
            {"reservation_id": "HATHAT", "cabin": "business", "flights": booking["flights"], "payment_id": card},
        ),
        (
            "update_reservation_passengers",
            {"reservation_id": "HATHAT", "passengers": [passengers[0], {**passengers[1], "first_name": "Bo"}]},
        ),
        ("send_certificate", {"user_id": user_id, "amount": 100}),
        ("cancel_reservation", {"reservation_id": "HATHAT"}),
    ]
    initial = env.state_hash()
    for name, arguments in steps:
        before = env.state_hash()
        observation = env.call_tool(name, arguments)
        assert not observation.startswith("Error"), (name, observation)
        assert env.state_hash() != before, name
    assert env.state_hash() == consistent_hash(env.data) != initial
    assert json.loads(env.call_tool("get_user_details", {"user_id": user_id}))["reservations"][-1] == "HATHAT"
    env.reset()  # the booking is removed again and the user's lists are restored
    assert env.state_hash() == initial and "HATHAT" not in env.data["reservations"]
    assert env.data == make_env("airline", {"seed": 4}).data


@pytest.mark.parametrize(
    "config, message",
    [
        ({"num_flights": 2}, "num_flights"),
        ({"num_users": -1}, "num_users"),
        ({"seed": True}, "seed must be an integer"),
    ],
)
def test_bad_generator_options_name_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        make_env("airline", config)
