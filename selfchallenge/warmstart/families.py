"""Task families for the warm start: each draws one concrete task (literals, tool steps, wrong variants) from a
seeded `random.Random`. Stdlib plus the calculation tools; generators.py turns a `Spec` into a checked record.

Literals are bound first (`price = 1200`) and every number in an instruction follows a space, so that the
instruction and the program tokenise the literal identically under byte-level BPE (the tiny model copies it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..envs.calculation.tools import PURE_TOOLS

TRADE, DECODER, DNA = "trade_calculator", "message_decoder", "cryptobotanists_plant_dna_sequencer"
NUMBER_ONLY = "Answer with the number only."
TEXT_ONLY = "Answer with the text only."

WORDS = (
    "apple", "bridge", "candle", "delta", "ember", "falcon", "garden", "harbor", "island", "jungle", "kettle",
    "lemon", "meteor", "nebula", "orbit", "planet", "quartz", "river", "signal", "tunnel", "violet", "window",
    "zenith", "comet", "galaxy", "rocket", "silver", "thunder", "crystal", "shadow", "beacon", "cosmos", "anchor",
    "basket", "canyon", "desert", "engine", "forest", "glacier", "hammer", "jacket", "ladder", "magnet", "needle",
    "oyster", "pepper", "rabbit", "saddle", "timber", "velvet", "walnut", "yellow", "copper", "marble", "pillow",
    "puzzle", "spider", "turtle", "wizard", "cotton", "dragon", "flower", "guitar", "meadow", "pirate", "starlight",
)  # fmt: skip


@dataclass
class Spec:
    """One task as a family writes it: literals bound first (`setup`), then tool lines ending in `answer = ...`."""

    family: str
    domain: str
    instruction: str
    setup: list[str]
    steps: list[str]
    failures: list[list[str]]  # wrong step lines (run after the same setup)
    kind: str  # "number" | "text"


def _price(rng: random.Random) -> int:
    return rng.randrange(1, 21) * 100


def _rate(rng: random.Random) -> float:
    return rng.choice((0.25, 0.5, 0.75, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0))


def _tariff(rng: random.Random) -> int:
    return rng.randrange(2, 16)


def trade_convert(rng: random.Random) -> Spec:
    price, rate = _price(rng), _rate(rng)
    return Spec(
        "trade_convert",
        TRADE,
        f"Convert a price of {price} at a conversion rate of {rate}. {NUMBER_ONLY}",
        [f"price = {price}", f"rate = {rate}"],
        ["answer = convert_currency(price, rate)"],
        [["answer = price"], ["answer = convert_currency(price, 1 / rate)"], ["answer = price + rate"]],
        "number",
    )


def trade_tariff(rng: random.Random) -> Spec:
    price, tariff = _price(rng), _tariff(rng)
    return Spec(
        "trade_tariff",
        TRADE,
        f"A price of {price} has a tariff rate of {tariff}%. How much is the tariff? {NUMBER_ONLY}",
        [f"price = {price}", f"tariff_rate = {tariff}"],
        ["answer = calculate_tariff(price, tariff_rate)"],
        [
            ["answer = calculate_tariff(price, tariff_rate / 100)"],
            ["answer = estimate_final_value(price, calculate_tariff(price, tariff_rate))"],
            ["answer = price"],
        ],
        "number",
    )


def trade_final_value(rng: random.Random) -> Spec:
    price, rate, tariff = _price(rng), _rate(rng), _tariff(rng)
    return Spec(
        "trade_final_value",
        TRADE,
        f"Convert a price of {price} at a rate of {rate}, then add a tariff of {tariff}% on the converted price. "
        f"What is the final value? {NUMBER_ONLY}",
        [f"price = {price}", f"rate = {rate}", f"tariff_rate = {tariff}"],
        [
            "converted = convert_currency(price, rate)",
            "tariff = calculate_tariff(converted, tariff_rate)",
            "answer = estimate_final_value(converted, tariff)",
        ],
        [
            ["answer = estimate_final_value(price, calculate_tariff(price, tariff_rate))"],
            ["answer = convert_currency(price, rate)"],
            ["converted = convert_currency(price, rate)", "answer = estimate_final_value(price, converted)"],
        ],
        "number",
    )


def trade_extreme(rng: random.Random) -> Spec:
    offers = rng.sample(range(10, 100), 3)
    offers = [value * 10 for value in offers]
    highest = rng.random() < 0.5
    word, tool, wrong = (
        ("highest", "find_maximum", "find_minimum") if highest else ("lowest", "find_minimum", "find_maximum")
    )
    return Spec(
        "trade_extreme",
        TRADE,
        f"Three offers are {offers[0]}, {offers[1]} and {offers[2]}. What is the {word} offer? {NUMBER_ONLY}",
        [f"a = {offers[0]}", f"b = {offers[1]}", f"c = {offers[2]}"],
        [f"answer = {tool}(a, b, c)"],
        [
            [f"answer = {wrong}(a, b, c)"],
            ["answer = a + b + c"],
            ["answer = a"] if offers[0] != max(offers) else ["answer = c"],
        ],
        "number",
    )


def trade_cheaper_route(rng: random.Random) -> Spec:
    while True:
        price_a, rate_a, price_b, rate_b = _price(rng), _rate(rng), _price(rng), _rate(rng)
        if price_a * rate_a != price_b * rate_b:
            break
    return Spec(
        "trade_cheaper_route",
        TRADE,
        f"Route A costs {price_a} at a rate of {rate_a}; route B costs {price_b} at a rate of {rate_b}. "
        f"What is the lower converted price? {NUMBER_ONLY}",
        [f"price_a = {price_a}", f"rate_a = {rate_a}", f"price_b = {price_b}", f"rate_b = {rate_b}"],
        ["answer = find_minimum(convert_currency(price_a, rate_a), convert_currency(price_b, rate_b))"],
        [
            ["answer = find_maximum(convert_currency(price_a, rate_a), convert_currency(price_b, rate_b))"],
            ["answer = find_minimum(price_a, price_b)"],
            ["answer = convert_currency(price_a, rate_a) + convert_currency(price_b, rate_b)"],
        ],
        "number",
    )


def _caesar_encode(text: str, shift: int) -> str:
    return PURE_TOOLS[DECODER]["caesar_decode"](text, -shift)


def decoder_hex(rng: random.Random) -> Spec:
    word = rng.choice(WORDS)
    hex_string = word.encode().hex()
    return Spec(
        "decoder_hex",
        DECODER,
        f"Decode the hex string '{hex_string}' to ASCII. {TEXT_ONLY}",
        [f"hex_string = '{hex_string}'"],
        ["answer = convert_hex_to_ascii(hex_string)"],
        [
            ["answer = hex_string"],
            ["answer = reverse_string(convert_hex_to_ascii(hex_string))"],
            ["answer = convert_hex_to_ascii(hex_string).upper()"],
        ],
        "text",
    )


def decoder_reverse(rng: random.Random) -> Spec:
    word = rng.choice(WORDS)
    return Spec(
        "decoder_reverse",
        DECODER,
        f"Reverse the string '{word}'. {TEXT_ONLY}",
        [f"message = '{word}'"],
        ["answer = reverse_string(message)"],
        [["answer = message"], ["answer = caesar_decode(message, 1)"]],
        "text",
    )


def decoder_caesar(rng: random.Random) -> Spec:
    word, shift = rng.choice(WORDS), rng.randrange(1, 10)
    encoded = _caesar_encode(word, shift)
    return Spec(
        "decoder_caesar",
        DECODER,
        f"Decode '{encoded}' with a Caesar cipher shift of {shift}. {TEXT_ONLY}",
        [f"message = '{encoded}'", f"shift = {shift}"],
        ["answer = caesar_decode(message, shift)"],
        [
            ["answer = caesar_decode(message, shift + 1)"],
            ["answer = caesar_decode(message, -shift)"],
            ["answer = message"],
        ],
        "text",
    )


def decoder_hex_reverse(rng: random.Random) -> Spec:
    word = rng.choice(WORDS)
    hex_string = word[::-1].encode().hex()
    return Spec(
        "decoder_hex_reverse",
        DECODER,
        f"The message '{hex_string}' is hex. Decode it to ASCII, then reverse it. {TEXT_ONLY}",
        [f"hex_string = '{hex_string}'"],
        ["text = convert_hex_to_ascii(hex_string)", "answer = reverse_string(text)"],
        [["answer = convert_hex_to_ascii(hex_string)"], ["answer = reverse_string(hex_string)"]],
        "text",
    )


def decoder_length(rng: random.Random) -> Spec:
    word = rng.choice(WORDS)
    hex_string = word.encode().hex()
    return Spec(
        "decoder_length",
        DECODER,
        f"How many characters does the hex message '{hex_string}' have once decoded to ASCII? {NUMBER_ONLY}",
        [f"hex_string = '{hex_string}'"],
        ["answer = string_length(convert_hex_to_ascii(hex_string))"],
        [["answer = string_length(hex_string)"], ["answer = string_length(hex_string) + 1"]],
        "number",
    )


def _dna(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(length))


def dna_transcribe(rng: random.Random) -> Spec:
    sequence = _dna(rng, rng.randrange(4, 10))
    return Spec(
        "dna_transcribe",
        DNA,
        f"Transcribe the DNA sequence '{sequence}' to mRNA. {TEXT_ONLY}",
        [f"dna = '{sequence}'"],
        ["answer = transcribe_dna_to_mrna(dna)"],
        [
            ["answer = dna"],
            ["answer = reverse_transcribe_mrna_to_dna(dna)"],
            ["answer = transcribe_dna_to_mrna(dna)[::-1]"],
        ],
        "text",
    )


def dna_count(rng: random.Random) -> Spec:
    sequence = _dna(rng, rng.randrange(6, 12))
    base = rng.choice(sorted(set(sequence)))
    return Spec(
        "dna_count",
        DNA,
        f"How many times does '{base}' occur in the DNA sequence '{sequence}'? {NUMBER_ONLY}",
        [f"dna = '{sequence}'", f"base = '{base}'"],
        ["answer = count_nucleotides(dna)[base]"],
        [
            ["answer = len(dna)"],
            ["answer = count_nucleotides(dna)[base] + 1"],
            ["answer = len(count_nucleotides(dna))"],
        ],
        "number",
    )


def dna_reverse_transcribe(rng: random.Random) -> Spec:
    mrna = "".join(rng.choice("ACGU") for _ in range(rng.randrange(4, 10)))
    return Spec(
        "dna_reverse_transcribe",
        DNA,
        f"Reverse transcribe the mRNA sequence '{mrna}' to DNA. {TEXT_ONLY}",
        [f"mrna = '{mrna}'"],
        ["answer = reverse_transcribe_mrna_to_dna(mrna)"],
        [["answer = mrna"], ["answer = transcribe_dna_to_mrna(mrna)"]],
        "text",
    )


FAMILIES: dict[str, list[Callable[[random.Random], Spec]]] = {
    TRADE: [trade_convert, trade_tariff, trade_final_value, trade_extreme, trade_cheaper_route],
    DECODER: [decoder_hex, decoder_reverse, decoder_caesar, decoder_hex_reverse, decoder_length],
    DNA: [dna_transcribe, dna_count, dna_reverse_transcribe],
}
