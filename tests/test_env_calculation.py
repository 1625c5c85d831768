"""The `calculation` environment: tool semantics and quirks, worlds, snapshots, and every benchmark task solved by a
reference program that uses only the environment's tools."""

from __future__ import annotations

import json
import time

import pytest

from selfchallenge.envs import make_env
from selfchallenge.envs.calculation import DOMAINS
from selfchallenge.envs.calculation.world import generate_travel_world
from selfchallenge.eval.m3tooleval import check_answer, load_m3_tasks, m3_env_for_task

TRAVEL = "travel_itinerary_planning"


@pytest.fixture(scope="module")
def m3_dir(shared_data):
    return str(shared_data / "m3tooleval")


@pytest.fixture(scope="module")
def calc_tasks(m3_dir):
    return {task["name"]: task for task in load_m3_tasks(m3_dir) if task["domain"] != "web_browsing"}


def tools_for(domain, **config):
    return make_env("calculation", {"domain": domain, **config}).tools()


def run_program(env, source):
    """Run a program the way the sandbox does: tools bound as globals, the final answer in `answer`."""
    namespace = dict(env.tools())
    exec(compile(source, "<program>", "exec"), namespace)
    return namespace.get("answer")


# --- DNA -----------------------------------------------------------------------------------------------------
def test_dna_tools():
    t = tools_for("cryptobotanists_plant_dna_sequencer")
    assert t["count_nucleotides"]("TACGCA") == {"T": 1, "A": 2, "C": 2, "G": 1}
    assert list(t["count_nucleotides"]("GGA")) == ["G", "A"]  # order of first appearance
    assert t["transcribe_dna_to_mrna"]("ACGTX") == "UGCAX"
    assert t["reverse_transcribe_mrna_to_dna"]("UCAGX") == "AGTCX"
    assert t["translate_mrna_to_amino_acid"]("AUGUUUUUCGGGAU") == "Methionine-Phenylalanine-Phenylalanine-X-X"
    assert t["translate_mrna_to_amino_acid"]("") == ""
    assert t["find_max_nucleotide"]("A", 3, "C", 5, "G", 5) == ("C", 5)  # first of equal maxima
    with pytest.raises(ValueError):
        t["find_max_nucleotide"]()
    assert t["is_valid_dna_sequence"]("ACGT") is True
    assert t["is_valid_dna_sequence"]("ACGU") is False
    assert t["is_valid_dna_sequence"]("") is True
    with pytest.raises(AttributeError):
        t["transcribe_dna_to_mrna"](["A"])


# --- message decoder -------------------------------------------------------------------------------------------
def test_message_decoder_tools():
    t = tools_for("message_decoder")
    assert t["convert_hex_to_ascii"]("48656c6c6f") == "Hello"
    with pytest.raises(ValueError):
        t["convert_hex_to_ascii"]("zz")
    assert t["reverse_string"]("abc") == "cba"
    assert t["caesar_decode"]("Khoor, Zruog!", 3) == "Hello, World!"
    assert t["caesar_decode"]("abc", "1") == "zab"  # shift is int()-converted; wraps around
    assert t["caesar_decode"]("ABC", -1) == "BCD"
    assert t["string_length"]("four") == 4
    assert t["minimum_value"](3, 1, 2) == 1 and t["maximum_value"](3, 1, 2) == 3
    assert t["minimum_value"]([5, 1]) == [5, 1]  # *args: one list comes back unchanged, as upstream


def test_advertised_argument_names_are_not_the_real_ones():
    # Upstream advertises reverse_string(string) / string_length(string) but the functions take `s`.
    t = tools_for("message_decoder")
    assert t["reverse_string"](s="ab") == "ba"
    with pytest.raises(TypeError):
        t["reverse_string"](string="ab")


# --- trade calculator ------------------------------------------------------------------------------------------
def test_trade_calculator_tools():
    t = tools_for("trade_calculator")
    assert t["convert_currency"](100, 1.5) == 150.0
    assert t["calculate_tariff"](200, 8) == 16.0
    assert t["estimate_final_value"](150, 11.25) == 161.25
    assert t["calculator"]("2 + (3 * 4)") == 14
    assert t["calculator"]("max(2, 7) / 2") == 3.5
    assert t["calculator"]("2 +") == "Failed to evaluate expression: 2 +"
    assert t["calculator"]("1/0") == "Failed to evaluate expression: 1/0"
    assert t["find_minimum"](3.5, 1.5) == 1.5 and t["find_maximum"](3.5, 1.5) == 3.5
    with pytest.raises(ValueError):
        t["find_minimum"]()


# --- travel ----------------------------------------------------------------------------------------------------
def test_travel_tools_on_benchmark_tables(m3_dir):
    t = tools_for(TRAVEL, data_dir=m3_dir)
    flights = t["find_flights"]('"E"', '"B"', "2023-11-10")
    assert [f["price"] for f in flights] == [350, 165]
    assert flights[0] == {"from_location": '"E"', "to_location": '"B"', "date": "2023-11-10", "price": 350}
    assert t["find_flights"]("E", "B", "2023-11-10") == flights  # quotes are optional
    assert t["find_flights"]("E", "B", "2099-01-01") == []
    with pytest.raises(ValueError, match=r"Origin \[Z\] is not supported\. Supported from_locations: \['\"A\"'"):
        t["find_flights"]("Z", "B", "2023-11-10")
    with pytest.raises(ValueError, match=r"Destination \[Q\] is not supported"):
        t["find_flights"]("E", "Q", "2023-11-10")
    # Advertised as find_flights(destination, date): that call fails, as upstream.
    with pytest.raises(TypeError):
        t["find_flights"](destination="B", date="2023-11-10")

    hotels = t["book_hotel"]("B", "gym")
    assert [h["price_per_night"] for h in hotels] == [150, 160]
    assert [h["price_per_night"] for h in t["book_hotel"]('"B"', "gym", "pool")] == [160]
    assert len(t["book_hotel"]("C")) == 4
    assert t["book_hotel"]("F") == []  # a known location without hotels
    with pytest.raises(ValueError, match=r"Location \[Paris\] is not supported\. Supported locations"):
        t["book_hotel"]("Paris")

    assert t["budget_calculator"](450, 120, 5) == 1050
    assert t["max"]([1, 5, 2]) == 5 and t["max"](1, 5) == 5 and t["min"](4, 2) == 2
    assert t["max"]([{"r": 1}, {"r": 3}], key=lambda h: h["r"]) == {"r": 3}
    with pytest.raises(TypeError):
        t["min"](450)  # the builtin: one bare number is not iterable
    assert t["sum"](1, 2, 3.5) == 6.5
    with pytest.raises(TypeError):
        t["sum"]([1, 2])  # sum(*args) adds its arguments: 0 + [1, 2] fails


def test_travel_tools_hand_out_copies(m3_dir):
    env = make_env("calculation", {"domain": TRAVEL, "data_dir": m3_dir})
    env.tools()["find_flights"]("E", "A", "2023-12-25")[0]["price"] = 1
    fresh = make_env("calculation", {"domain": TRAVEL, "data_dir": m3_dir})
    assert fresh.tools()["find_flights"]("E", "A", "2023-12-25")[0]["price"] == 450


def test_travel_builtins_shadow_in_program_namespace(m3_dir):
    env = make_env("calculation", {"domain": TRAVEL, "data_dir": m3_dir})
    assert run_program(env, "answer = sum(1, 2) + max([3, 4])") == 7
    with pytest.raises(TypeError):
        run_program(env, "answer = sum([1, 2])")


# --- configuration, interface, snapshot ------------------------------------------------------------------------
def test_default_domain_is_the_union_of_all_four():
    env = make_env("calculation", {})
    names = list(env.tools())
    per_domain = [list(tools_for(domain)) for domain in DOMAINS]
    assert len(names) == 24 == sum(len(n) for n in per_domain) == len(set(names))
    assert names == [name for group in per_domain for name in group]
    assert env.domain == "all" and "Travel locations:" in env.describe()


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="domain='chess' is unknown"):
        make_env("calculation", {"domain": "chess"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['domian'\]"):
        make_env("calculation", {"domian": "message_decoder"})
    with pytest.raises(ValueError, match="seed must be an integer"):
        make_env("calculation", {"seed": "one"})
    with pytest.raises(FileNotFoundError, match="has no tables.json"):
        make_env("calculation", {"domain": TRAVEL, "data_dir": "/nonexistent"})


def test_tool_specs_follow_real_signatures():
    env = make_env("calculation", {})
    specs = {spec["function"]["name"]: spec["function"] for spec in env.tool_specs()}
    assert list(specs) == list(env.tools())
    flights = specs["find_flights"]["parameters"]
    assert flights["required"] == ["from_location", "to_location", "date"]
    hotel = specs["book_hotel"]["parameters"]
    assert hotel["properties"]["preferences"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "any number of values",
    }
    assert hotel["required"] == ["location"]
    assert specs["caesar_decode"]["parameters"]["properties"] == {
        "message": {"type": "string"},
        "shift": {"type": "integer"},
    }
    assert "s" in specs["reverse_string"]["parameters"]["properties"]
    json.dumps(env.tool_specs())


def test_json_tool_calls_spread_variadic_arguments(m3_dir):
    env = make_env("calculation", {"data_dir": m3_dir})
    assert env.call_tool("find_max_nucleotide", {"args": ["A", 3, "C", 5]}) == "('C', 5)"
    assert env.call_tool("book_hotel", {"location": "B", "preferences": ["gym", "pool"]}).startswith("[{'location'")
    assert env.call_tool("sum", [1, 2]) == "3"
    assert env.call_tool("find_flights", {"from_location": "Z", "to_location": "A", "date": "x"}).startswith(
        "Error: Origin [Z] is not supported"
    )
    assert env.call_tool("book_hotel", {"location": "B", "stars": 5}).startswith("Error: book_hotel() got unexpected")
    assert env.call_tool("book_hotel", {"preferences": ["gym"]}).startswith("Error: book_hotel() is missing argument")
    assert env.call_tool("teleport", {}) == "Unknown action teleport"


def test_snapshot_records_calls_and_tables(m3_dir):
    env = make_env("calculation", {"domain": TRAVEL, "data_dir": m3_dir})
    before = env.state_hash()
    assert env.snapshot()["tool_calls"] == [] and env.snapshot()["num_tool_calls"] == 0
    env.tools()["budget_calculator"](100, 50, 2)
    with pytest.raises(ValueError):
        env.tools()["book_hotel"]("Atlantis")
    snap = env.snapshot()
    assert snap["domain"] == TRAVEL
    assert snap["tool_calls"][0] == {
        "name": "budget_calculator",
        "args": [100, 50, 2],
        "kwargs": {},
        "result": 200,
        "error": None,
    }
    assert snap["tool_calls"][1]["result"] is None
    assert snap["tool_calls"][1]["error"].startswith("ValueError: Location [Atlantis]")
    assert len(snap["tables"]["flights"]) == 29 and len(snap["tables"]["hotels"]) == 13
    assert env.state_hash() != before
    snap["tables"]["flights"].clear()  # a deep copy: the world is untouched
    assert len(env.snapshot()["tables"]["flights"]) == 29
    json.dumps(snap)


def test_snapshot_normalises_results_and_has_no_tables_for_pure_domains():
    env = make_env("calculation", {"domain": "cryptobotanists_plant_dna_sequencer"})
    env.tools()["find_max_nucleotide"]("A", 2)
    snap = env.snapshot()
    assert snap["tool_calls"][0]["result"] == ["A", 2]  # tuple -> list
    assert "tables" not in snap


def test_environments_are_fresh_and_cheap(m3_dir):
    first = make_env("calculation", {"data_dir": m3_dir})
    first.tools()["sum"](1, 2)
    started = time.perf_counter()
    envs = [make_env("calculation", {"data_dir": m3_dir}) for _ in range(300)]
    elapsed = time.perf_counter() - started
    assert all(env.snapshot()["tool_calls"] == [] for env in envs)
    assert envs[0].world is first.world  # parsed tables are cached
    assert elapsed < 3.0, f"300 environments took {elapsed:.2f}s"


# --- generated worlds ------------------------------------------------------------------------------------------
def test_generated_worlds_are_deterministic_and_differ_by_seed():
    first = make_env("calculation", {"domain": TRAVEL, "seed": 7}).snapshot()["tables"]
    again = make_env("calculation", {"domain": TRAVEL, "seed": 7}).snapshot()["tables"]
    other = make_env("calculation", {"domain": TRAVEL, "seed": 8}).snapshot()["tables"]
    assert first == again and first != other
    assert make_env("calculation", {}).snapshot()["tables"]["source"] == "seed:0"


@pytest.mark.parametrize("seed", range(6))
def test_generated_worlds_have_benchmark_shape(seed):
    world = generate_travel_world(seed)
    assert 5 <= len(world["locations"]) <= 8 and len(set(world["locations"])) == len(world["locations"])
    assert len(world["flights"]) >= 8
    for flight in world["flights"]:
        assert set(flight) == {"from_location", "to_location", "date", "price"}
        assert flight["from_location"] != flight["to_location"]
        assert isinstance(flight["price"], int) and 80 <= flight["price"] < 990
        assert len(flight["date"]) == 10 and flight["date"][4] == "-"
    for hotel in world["hotels"]:
        assert set(hotel) == {"location", "preferences", "price_per_night", "rating"}
        assert hotel["preferences"] and len(set(hotel["preferences"])) == len(hotel["preferences"])
        assert 1 <= hotel["rating"] <= 5
    assert {h["location"] for h in world["hotels"]} == set(world["locations"])
    # Multi-leg trips exist: some flight arrives where another later flight departs.
    assert any(
        a["to_location"] == b["from_location"] and a["date"] < b["date"]
        for a in world["flights"]
        for b in world["flights"]
    )


TEMPLATED_TRIP = """
legs = [(start, first_stop, first_date, 2), (first_stop, second_stop, second_date, 3)]
answer = 0
for origin, destination, date, nights in legs:
    flight = min(find_flights(origin, destination, date), key=lambda f: f["price"])
    hotel = min(book_hotel(destination), key=lambda h: h["price_per_night"])
    answer = answer + budget_calculator(flight["price"], hotel["price_per_night"], nights)
"""


@pytest.mark.parametrize("seed", range(4))
def test_generated_world_answers_a_templated_two_city_question(seed):
    world = generate_travel_world(seed)
    flights = world["flights"]
    leg1, leg2 = next(
        (a, b) for a in flights for b in flights if a["to_location"] == b["from_location"] and a["date"] < b["date"]
    )
    env = make_env("calculation", {"domain": TRAVEL, "seed": seed})
    bindings = (
        f"start, first_stop, first_date = {leg1['from_location']!r}, {leg1['to_location']!r}, {leg1['date']!r}\n"
        f"second_stop, second_date = {leg2['to_location']!r}, {leg2['date']!r}\n"
    )
    answer = run_program(env, bindings + TEMPLATED_TRIP)

    def cheapest_leg(origin, destination, date, nights):
        price = min(
            f["price"]
            for f in flights
            if (f["from_location"], f["to_location"], f["date"]) == (origin, destination, date)
        )
        night = min(h["price_per_night"] for h in world["hotels"] if h["location"] == destination)
        return price + night * nights

    expected = cheapest_leg(leg1["from_location"], leg1["to_location"], leg1["date"], 2) + cheapest_leg(
        leg2["from_location"], leg2["to_location"], leg2["date"], 3
    )
    assert answer == expected and check_answer(str(answer), expected)
    # Per leg: find_flights, min, book_hotel, min, budget_calculator (min is a tool of this domain too).
    calls = [call["name"] for call in env.snapshot()["tool_calls"]]
    assert calls == ["find_flights", "min", "book_hotel", "min", "budget_calculator"] * 2


# --- the benchmark tasks ---------------------------------------------------------------------------------------
FINAL_VALUE = """
def final_value(amount, rate, tariff_rate):
    converted = convert_currency(amount, rate)
    return estimate_final_value(converted, calculate_tariff(converted, tariff_rate))
"""
FLAT_COUNTS = "def flat(counts):\n    return [part for pair in counts.items() for part in pair]\n"
CHEAPEST = """
def leg(origin, destination, date, nights, *preferences, pick_hotel=None):
    flight = min(find_flights(origin, destination, date), key=lambda f: f["price"])
    hotels = book_hotel(destination, *preferences)
    hotel = pick_hotel(hotels) if pick_hotel else min(hotels, key=lambda h: h["price_per_night"])
    return budget_calculator(flight["price"], hotel["price_per_night"], nights)

def best_rated(hotels):
    return max(hotels, key=lambda h: h["rating"])
"""

PROGRAMS = {
    # message_decoder
    "message_decoder/full_alien_message_decoding": (
        "answer = caesar_decode(reverse_string(convert_hex_to_ascii('7a686b7a686d666d686b')), 5)"
    ),
    "message_decoder/shortest_caesar_decoded_message": """
hexes = ['636261', '686766', '6365646362', '6867666865']
answer = minimum_value(*[string_length(caesar_decode(reverse_string(convert_hex_to_ascii(h)), 4)) for h in hexes])
""",
    # The benchmark asks for the longest message but expects a length (all three have length 3).
    "message_decoder/longest_decoded_string": """
pairs = zip(['4a656d', '4b6867', '4c696f'], [2, 3, 5])
answer = maximum_value(*[string_length(caesar_decode(reverse_string(convert_hex_to_ascii(h)), s)) for h, s in pairs])
""",
    "message_decoder/specific_decoded_character": (
        "answer = caesar_decode(reverse_string(convert_hex_to_ascii('576562546563686e6f6c6f6779')), 7)"
    ),
    "message_decoder/hex_caesar_combined_decoding": "answer = caesar_decode(convert_hex_to_ascii('4d4f5252'), 2)",
    "message_decoder/multi_step_decoding_challenge": (
        "answer = caesar_decode(reverse_string(convert_hex_to_ascii('726f77746e6153794d')), 3)"
    ),
    "message_decoder/length_based_decoding_puzzle": """
decoded = [caesar_decode(convert_hex_to_ascii(h), 6) for h in ['646566', '6a6b6c6d', '68696a6b6c']]
answer = [m for m in decoded if string_length(m) == 5][0]
""",
    "message_decoder/maximum_value_decoding": """
hexes = ['313233', '343536', '373839']
answer = maximum_value(*[int(reverse_string(caesar_decode(convert_hex_to_ascii(h), 4))) for h in hexes])
""",
    # cryptobotanists_plant_dna_sequencer
    "cryptobotanists_plant_dna_sequencer/find_most_common_nucleotide_and_transcribe": FLAT_COUNTS
    + """
nucleotide, _ = find_max_nucleotide(*flat(count_nucleotides('AGCTAGCCGATGCA')))
answer = transcribe_dna_to_mrna(nucleotide * 3)
""",
    "cryptobotanists_plant_dna_sequencer/validate_transcribe_translate": """
sequence = 'AGCTTX'
if is_valid_dna_sequence(sequence):
    answer = translate_mrna_to_amino_acid(transcribe_dna_to_mrna(sequence))
else:
    answer = 'Invalid DNA sequence'
""",
    "cryptobotanists_plant_dna_sequencer/reverse_transcribe_count_max_nucleotide": FLAT_COUNTS
    + "answer = find_max_nucleotide(*flat(count_nucleotides(reverse_transcribe_mrna_to_dna('AUGCUUUUC'))))[0]\n",
    "cryptobotanists_plant_dna_sequencer/transcribe_translate_amino_acid_length": (
        "answer = len(translate_mrna_to_amino_acid(transcribe_dna_to_mrna('AGCTAGCGTA')).split('-'))"
    ),
    "cryptobotanists_plant_dna_sequencer/reverse_transcribe_palindrome_check": (
        "answer = count_nucleotides(reverse_transcribe_mrna_to_dna('AUGCGU'))"
    ),
    "cryptobotanists_plant_dna_sequencer/validate_find_longest_valid_sequence": """
valid = [s for s in ['AGCTAG', 'XYZABC', 'GTCAGT'] if is_valid_dna_sequence(s)]
answer = max(valid, key=len)
""",
    "cryptobotanists_plant_dna_sequencer/transcribe_translate_find_amino_acid": (
        "answer = 'Methionine' in translate_mrna_to_amino_acid(transcribe_dna_to_mrna('AGCTAGCGTA'))"
    ),
    "cryptobotanists_plant_dna_sequencer/find_most_common_nucleotide_combined_sequence": FLAT_COUNTS
    + "answer = find_max_nucleotide(*flat(count_nucleotides(''.join(['AGCT', 'CCGA', 'TTAG']))))\n",
    # trade_calculator
    "trade_calculator/estimate_final_value": "answer = estimate_final_value(150, calculate_tariff(150, 7.5))",
    "trade_calculator/interstellar_trade_transaction": FINAL_VALUE + "answer = final_value(100 * 50, 1.5, 8)",
    "trade_calculator/taxed_commodity_export": FINAL_VALUE + "answer = final_value(200 * 120, 2.0, 5)",
    "trade_calculator/best_trade_route_selection": FINAL_VALUE
    + "answer = find_minimum(final_value(500, 1.3, 7), final_value(500, 1.4, 9), final_value(500, 1.2, 4))",
    "trade_calculator/most_profitable_conversion_rate": FINAL_VALUE
    + "answer = find_maximum(*[final_value(1000 * 300, rate, 10) for rate in (2.5, 2.3, 2.7)])",
    "trade_calculator/bulk_trade_quantity_discount": FINAL_VALUE
    + "units = 2500\nanswer = final_value((units * 1500) * (0.95 if units >= 2000 else 1), 1.8, 12)",
    "trade_calculator/comparative_profit_analysis": FINAL_VALUE
    + "answer = find_maximum(final_value(100 * 300, 1.6, 6), final_value(80 * 500, 1.8, 5))",
    "trade_calculator/fluctuating_conversion_rates_impact": FINAL_VALUE
    + "answer = [final_value(200 * q, r, 7) for q, r in zip([100, 150, 200], [1.7, 1.5, 1.6])]",
    "trade_calculator/optimal_trade_route_multiple_commodities": FINAL_VALUE
    + "answer = find_maximum(final_value(150 * 200, 1.7, 8), final_value(250 * 300, 1.5, 5),"
    " final_value(100 * 400, 2.0, 10))",
    "trade_calculator/seasonal_price_fluctuation_impact": FINAL_VALUE
    + "answer = [final_value(price * 200, 1.8, 7) for price in (200, 250, 180)]",
    "trade_calculator/balancing_multiple_trade_offers": FINAL_VALUE
    + "answer = final_value(300 * 250, 1.6, 6) - final_value(150 * 220, 1.5, 4)",
    "trade_calculator/dynamic_pricing_strategy": FINAL_VALUE
    + "answer = [final_value(120 * 300 * 1.10, 1.8, 6), final_value(100 * 300, 1.8, 6),"
    " final_value(80 * 300 * 0.95, 1.8, 6)]",
    "trade_calculator/quantity_tariff_tradeoff": FINAL_VALUE
    + "answer = find_maximum(final_value(200 * 400, 1.7, 10), final_value(150 * 400, 1.7, 5))",
    "trade_calculator/optimizing_bulk_purchase_discounts": FINAL_VALUE
    + """
options = []
for price in (150, 180):
    for units in (950, 1050):
        options.append(final_value(units * price * (0.95 if units >= 1000 else 1), 1.6, 7))
answer = find_maximum(*options)
""",
    "trade_calculator/currency_fluctuation_hedging": FINAL_VALUE
    + "answer = find_minimum(*[final_value(500 * 250, rate, 8) for rate in (1.5, 1.65, 1.8)])",
    "trade_calculator/variable_tariff_profit_maximization": FINAL_VALUE
    + "answer = find_maximum(*[final_value(units * 300, 1.7, t) for units, t in ((400, 6), (350, 4), (450, 7))])",
    "trade_calculator/long_term_vs_short_term_trade_decisions": FINAL_VALUE
    + "answer = [final_value(600 * 200, 1.8, 5), final_value(600 * 200 * 1.10, 1.8 - 0.2, 5 + 2)]",
    # travel_itinerary_planning (the benchmark's first-listed hotel for plan_trip_to_0)
    "travel_itinerary_planning/plan_trip_to_0": """
flight = find_flights('"E"', '"A"', '2023-12-25')[0]
hotel = book_hotel('"A"', 'wifi', 'pool')[0]
answer = budget_calculator(flight['price'], hotel['price_per_night'], 5)
""",
    "travel_itinerary_planning/cheapest_new_york_trip": """
answer = min(budget_calculator(f['price'], h['price_per_night'], 3)
             for f in find_flights('E', 'B', '2023-11-10') for h in book_hotel('B'))
""",
    "travel_itinerary_planning/luxury_tokyo_trip": CHEAPEST
    + "answer = leg('E', 'C', '2023-10-05', 7, pick_hotel=best_rated)",
    "travel_itinerary_planning/budget_trip_to_paris": CHEAPEST + "answer = leg('E', 'A', '2023-12-25', 4)",
    "travel_itinerary_planning/new_york_trip_with_specific_preferences": """
flight = min(find_flights('E', 'B', '2023-11-10'), key=lambda f: f['price'])
hotel = min([h for h in book_hotel('B', 'gym') if 'pool' not in h['preferences']], key=lambda h: h['price_per_night'])
answer = budget_calculator(flight['price'], hotel['price_per_night'], 3)
""",
    "travel_itinerary_planning/london_business_trip": """
answer = min(budget_calculator(f['price'], h['price_per_night'], 4)
             for f in find_flights('E', 'D', '2023-08-15') for h in book_hotel('D', 'wifi'))
""",
    "travel_itinerary_planning/last_minute_tokyo_trip": CHEAPEST + "answer = leg('E', 'C', '2023-12-01', 3)",
    "travel_itinerary_planning/new_york_holiday_season": CHEAPEST
    + "answer = leg('E', 'B', '2023-12-15', 7, 'gym', 'pool')",
    "travel_itinerary_planning/multi_city_business_trip": CHEAPEST
    + "answer = sum(leg('E', 'B', '2023-11-10', 2, 'wifi'), leg('B', 'C', '2023-11-13', 3, 'wifi'))",
    "travel_itinerary_planning/leisure_multi_city_trip": CHEAPEST
    + "answer = leg('E', 'A', '2023-12-25', 3) + leg('A', 'D', '2023-12-28', 2)",
    "travel_itinerary_planning/three_city_european_tour": CHEAPEST
    + """
answer = sum(leg('E', 'A', '2023-12-25', 3, 'wifi'), leg('A', 'D', '2023-12-29', 4, 'wifi'),
             leg('D', 'C', '2024-01-02', 3, 'wifi'))
""",
    "travel_itinerary_planning/adventure_trip": CHEAPEST
    + """
answer = sum(leg('E', 'C', '2023-12-01', 2, 'pool'), leg('C', 'B', '2023-12-03', 3),
             leg('B', 'D', '2023-12-06', 2, 'gym'))
""",
    "travel_itinerary_planning/cultural_exploration_tour": CHEAPEST
    + """
answer = sum(leg('E', 'A', '2023-12-25', 4, 'wifi'), leg('A', 'B', '2023-12-29', 2, 'wifi'),
             leg('B', 'D', '2024-01-01', 3, 'wifi', pick_hotel=best_rated))
""",
    "travel_itinerary_planning/leisure_and_business_combo": CHEAPEST
    + """
answer = sum(leg('E', 'D', '2023-08-15', 3, 'wifi', 'gym'), leg('D', 'A', '2023-08-18', 2, 'pool'),
             leg('A', 'C', '2023-08-20', 2, 'wifi', 'gym'))
""",
    "travel_itinerary_planning/grand_tour_vacation": CHEAPEST
    + """
stops = [('E', 'C', '2023-12-01', 2), ('C', 'D', '2023-12-03', 3), ('D', 'B', '2023-12-06', 2), ('B', 'E', '2023-12-08', 3)]
answer = sum(*[leg(*stop, pick_hotel=best_rated) for stop in stops])
""",
}


def test_every_calculation_task_has_a_reference_program(calc_tasks):
    assert len(calc_tasks) == 48
    assert sorted(PROGRAMS) == sorted(calc_tasks)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_reference_program_solves_task(name, calc_tasks):
    task = calc_tasks[name]
    env_name, env_config = m3_env_for_task(task)
    env = make_env(env_name, env_config)
    # The environment exposes exactly the task's tools, with the benchmark's descriptions and signatures.
    assert env_name == "calculation" and list(env.tools()) == [tool["name"] for tool in task["tools"]]
    assert env.tool_docs() == task["tools"]
    answer = run_program(env, PROGRAMS[name])
    assert check_answer(str(answer), task["expected_output"]), (name, answer, task["expected_output"])
    assert env.snapshot()["num_tool_calls"] > 0


def test_call_log_is_capped_but_counts_everything():
    from selfchallenge.envs.toolkit import MAX_LOGGED_CALLS

    env = make_env("calculation", {"domain": "message_decoder"})
    run_program(env, f"for i in range({MAX_LOGGED_CALLS + 50}):\n    answer = string_length('ab' * i)")
    snap = env.snapshot()
    assert len(snap["tool_calls"]) == MAX_LOGGED_CALLS and snap["num_tool_calls"] == MAX_LOGGED_CALLS + 50
    assert snap["tool_calls"][3] == {
        "name": "string_length",
        "args": ["ababab"],
        "kwargs": {},
        "result": 6,
        "error": None,
    }


def test_schemas_match_the_functions_real_parameters():
    import inspect

    from selfchallenge.envs.calculation.tools import PURE_TOOLS, TOOL_DOCS, make_travel_tools

    functions = {name: f for group in PURE_TOOLS.values() for name, f in group.items()}
    functions.update(make_travel_tools(generate_travel_world(0)))
    for docs in TOOL_DOCS.values():
        for doc in docs:
            if doc.name in ("max", "min"):  # builtins: (iterable | *args, key=, default=)
                continue
            real = [
                (p.name, p.kind == p.VAR_POSITIONAL) for p in inspect.signature(functions[doc.name]).parameters.values()
            ]
            assert real == [(p.name, p.variadic) for p in doc.params()], doc.name


def test_inputs_are_program_variables_and_part_of_the_state():
    from selfchallenge.envs import make_env

    env = make_env("calculation", {"domain": "trade_calculator", "inputs": {"price": 1200, "rate": 0.9}})
    assert env.program_globals() == {"price": 1200, "rate": 0.9}
    assert env.snapshot()["inputs"] == {"price": 1200, "rate": 0.9}
    assert "price = 1200" in env.describe()
    assert (
        make_env("calculation", {}).program_globals() == {} and "inputs" not in make_env("calculation", {}).snapshot()
    )
    for bad in ({"x": [1]}, {"_p": 1}, {"not valid": 1}, {"flag": True}, [1]):
        with pytest.raises(ValueError, match="inputs"):
            make_env("calculation", {"inputs": bad})
