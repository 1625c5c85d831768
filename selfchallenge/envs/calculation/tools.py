"""The M3ToolEval calculation tools, domain by domain, with their benchmark descriptions. Stdlib only.

Behaviour follows docs/benchmarks-spec.md section 2.1, upstream quirks included:
- `find_flights(from_location, to_location, date)` is advertised as `find_flights(destination, date)`;
- `reverse_string(s)` and `string_length(s)` are advertised with the argument name `string`, but the upstream
  functions call it `s` (a keyword call `reverse_string(string=...)` fails there, and here);
- `minimum_value`, `maximum_value`, `find_minimum` and `find_maximum` take `*args` and return min/max of that
  tuple, so a single list argument comes back unchanged;
- travel's `max` and `min` are Python's builtins and `sum(*args)` sums its arguments, so in a program namespace
  they shadow the builtins (`sum([1, 2])` raises TypeError there);
- `calculator` returns "Failed to evaluate expression: <expr>" instead of raising.
"""

from __future__ import annotations

import builtins
import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..toolkit import ToolDoc

DOMAINS = (
    "cryptobotanists_plant_dna_sequencer",
    "message_decoder",
    "trade_calculator",
    "travel_itinerary_planning",
)

# --- cryptobotanists_plant_dna_sequencer -----------------------------------------------------------------
CODON_MAP = {"AUG": "Methionine", "UUU": "Phenylalanine", "UUC": "Phenylalanine"}
_DNA_TO_MRNA = str.maketrans("ACGT", "UGCA")
_MRNA_TO_DNA = str.maketrans("UCAG", "AGTC")


def count_nucleotides(dna_sequence):
    """Counts per symbol, in order of first appearance."""
    return dict(Counter(dna_sequence))


def transcribe_dna_to_mrna(dna_sequence):
    return dna_sequence.translate(_DNA_TO_MRNA)


def translate_mrna_to_amino_acid(mrna_sequence):
    codons = (mrna_sequence[start : start + 3] for start in range(0, len(mrna_sequence), 3))
    return "-".join(CODON_MAP.get(codon, "X") for codon in codons)


def find_max_nucleotide(*args):
    """Arguments are flattened pairs (k1, v1, k2, v2, ...); returns (key, count) of the largest count."""
    counts = dict(zip(args[::2], args[1::2], strict=False))  # an odd trailing key is dropped
    best = max(counts, key=counts.get)
    return (best, counts[best])


def is_valid_dna_sequence(dna_sequence):
    return set(dna_sequence) <= set("ACGT")


def reverse_transcribe_mrna_to_dna(mrna_sequence):
    return mrna_sequence.translate(_MRNA_TO_DNA)


# --- message_decoder ---------------------------------------------------------------------------------------
def convert_hex_to_ascii(hex_string):
    return bytes.fromhex(str(hex_string)).decode("utf-8")


def reverse_string(s):
    return s[::-1]


def caesar_decode(message, shift):
    """Shifts letters back by `shift` (keeping case); other characters are unchanged."""
    shift = int(shift)

    def decode(char: str) -> str:
        if char.isupper():
            return chr((ord(char) - shift - ord("A")) % 26 + ord("A"))
        if char.islower():
            return chr((ord(char) - shift - ord("a")) % 26 + ord("a"))
        return char

    return "".join(decode(char) for char in message)


def string_length(s):
    return len(s)


def minimum_value(*args):
    return min(args)


def maximum_value(*args):
    return max(args)


# --- trade_calculator --------------------------------------------------------------------------------------
def convert_currency(base_price, conversion_rate):
    return base_price * conversion_rate


def calculate_tariff(price, tariff_rate):
    return price * tariff_rate / 100


def estimate_final_value(price, tariff):
    return price + tariff


def python_eval(expression):
    return eval(expression, {"__builtins__": builtins})  # noqa: S307 - the benchmark's calculator is eval


# Where calculator's expression is evaluated. The sandbox's env host, which must never run a program's code,
# points this at an evaluation in a throwaway child process (selfchallenge/sandbox/envhost.py).
expression_evaluator: Callable[[Any], Any] = python_eval


def calculator(expression):
    """Python `eval` of the expression; any failure is reported as text, not raised."""
    try:
        return expression_evaluator(expression)
    except Exception:
        return f"Failed to evaluate expression: {expression}"


def find_minimum(*args):
    return min(args)


def find_maximum(*args):
    return max(args)


# --- travel_itinerary_planning (bound to a world: see world.py) ------------------------------------------
def make_travel_tools(world: dict) -> dict[str, Callable[..., Any]]:
    """find_flights / book_hotel / budget_calculator over `world` ({"locations", "flights", "hotels"}), plus the
    benchmark's `max`, `min` (builtins) and `sum(*args)`. Returned rows are copies; the world is never changed."""
    locations = list(world["locations"])
    supported = set(locations) | {loc.strip('"') for loc in locations}
    flights = world["flights"]
    hotels = world["hotels"]

    def find_flights(from_location, to_location, date):
        from_location = from_location.strip('"')
        to_location = to_location.strip('"')
        if from_location not in supported:
            raise ValueError(f"Origin [{from_location}] is not supported. Supported from_locations: {locations}")
        if to_location not in supported:
            raise ValueError(f"Destination [{to_location}] is not supported. Supported to_locations: {locations}")
        return [
            copy.deepcopy(flight)
            for flight in flights
            if flight["from_location"].strip('"') == from_location
            and flight["to_location"].strip('"') == to_location
            and flight["date"] == date
        ]

    def book_hotel(location, *preferences):
        location = location.strip('"')
        if location not in supported:
            raise ValueError(f"Location [{location}] is not supported. Supported locations: {locations}")
        return [
            copy.deepcopy(hotel)
            for hotel in hotels
            if hotel["location"].strip('"') == location and all(pref in hotel["preferences"] for pref in preferences)
        ]

    def sum_(*args):
        return builtins.sum(args)

    return {
        "find_flights": find_flights,
        "book_hotel": book_hotel,
        "budget_calculator": budget_calculator,
        "max": builtins.max,
        "min": builtins.min,
        "sum": sum_,
    }


def budget_calculator(flight_price, hotel_price_per_night, num_nights):
    return flight_price + hotel_price_per_night * num_nights


PURE_TOOLS: dict[str, dict[str, Callable[..., Any]]] = {
    "cryptobotanists_plant_dna_sequencer": {
        "count_nucleotides": count_nucleotides,
        "transcribe_dna_to_mrna": transcribe_dna_to_mrna,
        "translate_mrna_to_amino_acid": translate_mrna_to_amino_acid,
        "find_max_nucleotide": find_max_nucleotide,
        "is_valid_dna_sequence": is_valid_dna_sequence,
        "reverse_transcribe_mrna_to_dna": reverse_transcribe_mrna_to_dna,
    },
    "message_decoder": {
        "convert_hex_to_ascii": convert_hex_to_ascii,
        "reverse_string": reverse_string,
        "caesar_decode": caesar_decode,
        "string_length": string_length,
        "minimum_value": minimum_value,
        "maximum_value": maximum_value,
    },
    "trade_calculator": {
        "convert_currency": convert_currency,
        "calculate_tariff": calculate_tariff,
        "estimate_final_value": estimate_final_value,
        "calculator": calculator,
        "find_minimum": find_minimum,
        "find_maximum": find_maximum,
    },
}

# --- descriptions and advertised signatures (the text M3ToolEval prompts show), in benchmark order ------------
CALCULATOR_DESCRIPTION = (
    'Evaluates the given expression and returns the result. Accepts a calculation expression as input. For example, "2'
    ' + (3 * 4)" will return 14.'
)
_VARARGS_FLOAT = "Accepts variable number of float arguments."

TOOL_DOCS: dict[str, list[ToolDoc]] = {
    "cryptobotanists_plant_dna_sequencer": [
        ToolDoc(
            "count_nucleotides",
            "Counts the occurrences of each nucleotide in a DNA sequence. Arguments: dna_sequence (str)",
            "count_nucleotides(dna_sequence: str) -> dict",
        ),
        ToolDoc(
            "transcribe_dna_to_mrna",
            "Transcribes DNA sequence to mRNA. Arguments: dna_sequence (str)",
            "transcribe_dna_to_mrna(dna_sequence: str) -> str",
        ),
        ToolDoc(
            "translate_mrna_to_amino_acid",
            "Translates mRNA sequence to a chain of amino acids. Arguments: mrna_sequence (str)",
            "translate_mrna_to_amino_acid(mrna_sequence: str) -> str",
        ),
        ToolDoc(
            "find_max_nucleotide",
            "Return the nucleotide (str) with the maximum count (int). Arguments: nucleotide_counts in the form of"
            " (k1, v1, k2, v2, ..., kn, vn)",
            "find_max_nucleotide(*args) -> (str, int)",
        ),
        ToolDoc(
            "is_valid_dna_sequence",
            "Checks if the DNA sequence is valid. Arguments: dna_sequence (str)",
            "is_valid_dna_sequence(dna_sequence: str) -> bool",
        ),
        ToolDoc(
            "reverse_transcribe_mrna_to_dna",
            "Reverse transcribes mRNA sequence to DNA. Arguments: mrna_sequence (str)",
            "reverse_transcribe_mrna_to_dna(mrna_sequence: str) -> str",
        ),
    ],
    "message_decoder": [
        ToolDoc(
            "convert_hex_to_ascii",
            "Converts a hexadecimal string to ASCII. Arguments: hex_string (str)",
            "convert_hex_to_ascii(hex_string: str) -> str",
        ),
        ToolDoc(
            "reverse_string",
            "Reverses a string. Arguments: string (str)",
            "reverse_string(string: str) -> str",
            "reverse_string(s: str) -> str",
        ),
        ToolDoc(
            "caesar_decode",
            "Decodes a string using the Caesar cipher. Arguments: message (str), shift (int)",
            "caesar_decode(message: str, shift: int) -> str",
        ),
        ToolDoc(
            "string_length",
            "Finds the length of a string. Arguments: string (str)",
            "string_length(string: str) -> int",
            "string_length(s: str) -> int",
        ),
        ToolDoc(
            "minimum_value",
            "Finds the minimum value from given arguments. Arguments: *args (variable number of arguments)",
            "minimum_value(*args) -> int/float",
        ),
        ToolDoc(
            "maximum_value",
            "Finds the maximum value from given arguments. Arguments: *args (variable number of arguments)",
            "maximum_value(*args) -> int/float",
        ),
    ],
    "trade_calculator": [
        ToolDoc(
            "convert_currency",
            "Converts the commodity price to local currency. Arguments: base_price (float), conversion_rate (float)",
            "convert_currency(base_price: float, conversion_rate: float) -> float",
        ),
        ToolDoc(
            "calculate_tariff",
            "Calculates the trade tariff based on the converted price. Arguments: price (float), tariff_rate (float,"
            " in %)",
            "calculate_tariff(price: float, tariff_rate: float) -> float",
        ),
        ToolDoc(
            "estimate_final_value",
            "Estimates the final trade value including the tariff. Arguments: price (float), tariff (float)",
            "estimate_final_value(price: float, tariff: float) -> float",
        ),
        ToolDoc("calculator", CALCULATOR_DESCRIPTION, "calculator(expression: str) -> float"),
        ToolDoc(
            "find_minimum",
            f"Finds the minimum value among the given arguments. {_VARARGS_FLOAT}",
            "find_minimum(*args: float) -> float",
        ),
        ToolDoc(
            "find_maximum",
            f"Finds the maximum value among the given arguments. {_VARARGS_FLOAT}",
            "find_maximum(*args: float) -> float",
        ),
    ],
    "travel_itinerary_planning": [
        ToolDoc(
            "find_flights",
            "Finds flights based on source, destination and date. Arguments: from_location (str), to_location (str),"
            " date (str) in YYYY-MM-DD format.\n"
            'Returns a list of flights, each represented as a dictionary with keys "from_location", "to_location"'
            ' (destination), "date", and "price".\n'
            'Example: [{"from_location": "A", "to_location": "B", "date": "2023-12-25", "price": 450}]',
            "find_flights(destination: str, date: str) -> List[Dict]",
            "find_flights(from_location: str, to_location: str, date: str) -> List[Dict]",
        ),
        ToolDoc(
            "book_hotel",
            "Books a hotel based on location and preferences. Arguments: location (str), *preferences (variable"
            " number of str arguments).\n"
            'Returns a list of hotels, each represented as a dictionary with keys "location", "preferences",'
            ' "price_per_night", and "rating".\n'
            'Example: [{"location": "A", "preferences": ["wifi", "pool"], "price_per_night": 120, "rating": 4}]',
            "book_hotel(location: str, *preferences: str) -> List[Dict]",
        ),
        ToolDoc(
            "budget_calculator",
            "Calculates the total budget for a trip. Arguments: flight_price (float), hotel_price_per_night (float),"
            " num_nights (int).\nReturns the total budget (float).",
            "budget_calculator(flight_price: float, hotel_price_per_night: float, num_nights: int) -> float",
        ),
        ToolDoc(
            "max",
            f"Finds the maximum value among the given arguments. {_VARARGS_FLOAT}",
            "max(*args: float) -> float",
        ),
        ToolDoc(
            "min",
            f"Finds the minimum value among the given arguments. {_VARARGS_FLOAT}",
            "min(*args: float) -> float",
        ),
        ToolDoc("sum", f"Sums the given arguments. {_VARARGS_FLOAT}", "sum(*args: float) -> float"),
    ],
}

DOMAIN_SUMMARIES = {
    "cryptobotanists_plant_dna_sequencer": (
        "Plant DNA sequencer: count nucleotides, check that a sequence uses only A/C/G/T, transcribe DNA to mRNA"
        " (A->U, C->G, G->C, T->A) and back, translate mRNA codons to amino acids (a toy table that knows AUG,"
        " UUU and UUC and writes X otherwise), and pick the most frequent nucleotide."
    ),
    "message_decoder": (
        "Alien message decoder: hex to ASCII, string reversal, Caesar decoding (letters only, case kept),"
        " string lengths, and min/max of several values."
    ),
    "trade_calculator": (
        "Intergalactic trade calculator: convert prices with a conversion rate, tariffs as a percent of a price,"
        " final value = price + tariff, a Python expression calculator, and min/max of several values."
    ),
    "travel_itinerary_planning": (
        "Travel itinerary planning: search flights between locations on a date, find hotels in a location that"
        " offer all requested amenities (each with a nightly price and a rating), and total a trip's budget."
    ),
}
