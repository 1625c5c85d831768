"""Task families for the warm start: each draws one concrete task from a seeded `random.Random`. Stdlib only;
generators.py turns a `Spec` into a checked record.

A task's numbers and strings are its `inputs` (calculation `env_config.inputs`): bound as Python variables in
every program and shown to the verifier as `state["inputs"]`. The instruction names them ("Convert the price at
the rate"), the solution uses them by name (`answer = convert_currency(price, rate)`), and the verifier recomputes
the expected answer from them (`expected`, a Python expression over `i = state["inputs"]`). So neither role ever
has to copy a value from one place to another, which a model trained from scratch on CPU cannot learn in minutes;
what it must learn is the mapping from a question to a program, the skill the executor is evaluated on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

TRADE, DECODER, DNA = "trade_calculator", "message_decoder", "cryptobotanists_plant_dna_sequencer"

WORDS = (
    "apple", "bridge", "candle", "delta", "ember", "falcon", "garden", "harbor", "island", "jungle", "kettle",
    "lemon", "meteor", "nebula", "orbit", "planet", "quartz", "river", "signal", "tunnel", "violet", "window",
    "zenith", "comet", "galaxy", "rocket", "silver", "thunder", "crystal", "shadow", "beacon", "cosmos", "anchor",
    "basket", "canyon", "desert", "engine", "forest", "glacier", "hammer", "jacket", "ladder", "magnet", "needle",
    "oyster", "pepper", "rabbit", "saddle", "timber", "velvet", "walnut", "yellow", "copper", "marble", "pillow",
)  # fmt: skip
DNA_TO_MRNA = 'str.maketrans("ACGT", "UGCA")'
MRNA_TO_DNA = 'str.maketrans("UCAG", "AGTC")'


@dataclass
class Spec:
    """One task as a family writes it."""

    family: str
    domain: str
    question: str  # the instruction; names the inputs
    inputs: dict
    steps: list[str]  # the solution: tool lines ending in `answer = ...`
    failures: list[list[str]]  # wrong solutions
    kind: str  # "number" | "text"
    expected: str  # Python expression over `i` (the inputs) giving the right answer, for the verifier

    @property
    def instruction(self) -> str:
        return self.question


def _price(rng: random.Random) -> int:
    return rng.randrange(1, 21) * 100


def _rate(rng: random.Random) -> float:
    return rng.choice((0.25, 0.5, 0.75, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0))


def _tariff(rng: random.Random) -> int:
    return rng.randrange(2, 16)


# Several wordings per trade question (the first is the one the families had alone until recipe version 3), so that
# neither role can succeed by memorising one string; each names the same inputs.
TRADE_WORDINGS = {
    "trade_convert": (
        "Convert the price at the conversion rate. What is the converted price?",
        "What is the price worth once converted at the rate?",
        "Apply the conversion rate to the price. How much is it after conversion?",
    ),
    "trade_tariff": (
        "How much is the tariff on the price, at the tariff rate in percent?",
        "The tariff rate is in percent. What tariff is due on the price?",
        "Work out the tariff owed on the price given the tariff rate in percent.",
    ),
    "trade_final_value": (
        "Convert the price at the rate, then add the tariff (tariff rate in percent) on the converted price. "
        "What is the final value?",
        "What is the final value of the price converted at the rate, with the tariff (tariff rate in percent) on "
        "the converted price added?",
        "After converting the price at the rate and adding the tariff at the tariff rate in percent on the "
        "converted price, what is the final value?",
    ),
    "trade_highest": (
        "Which is the highest of the three offers a, b and c?",
        "Of the offers a, b and c, which one is the largest?",
        "Give the highest offer among a, b and c.",
    ),
    "trade_lowest": (
        "Which is the lowest of the three offers a, b and c?",
        "Of the offers a, b and c, which one is the smallest?",
        "Give the lowest offer among a, b and c.",
    ),
    "trade_cheaper_route": (
        "Route a converts price_a at rate_a and route b converts price_b at rate_b. What is the lower converted price?",
        "Which route is cheaper once converted: price_a at rate_a, or price_b at rate_b? Give its converted price.",
        "Convert price_a at rate_a and price_b at rate_b, and give the smaller of the two converted prices.",
    ),
}


def trade_convert(rng: random.Random) -> Spec:
    return Spec(
        "trade_convert",
        TRADE,
        rng.choice(TRADE_WORDINGS["trade_convert"]),
        {"price": _price(rng), "rate": _rate(rng)},
        ["answer = convert_currency(price, rate)"],
        [["answer = price"], ["answer = convert_currency(price, 1 / rate)"], ["answer = price + rate"]],
        "number",
        'i["price"] * i["rate"]',
    )


def trade_tariff(rng: random.Random) -> Spec:
    return Spec(
        "trade_tariff",
        TRADE,
        rng.choice(TRADE_WORDINGS["trade_tariff"]),
        {"price": _price(rng), "tariff_rate": _tariff(rng)},
        ["answer = calculate_tariff(price, tariff_rate)"],
        [["answer = calculate_tariff(price, tariff_rate / 100)"], ["answer = price * tariff_rate"], ["answer = price"]],
        "number",
        'i["price"] * i["tariff_rate"] / 100',
    )


def trade_final_value(rng: random.Random) -> Spec:
    return Spec(
        "trade_final_value",
        TRADE,
        rng.choice(TRADE_WORDINGS["trade_final_value"]),
        {"price": _price(rng), "rate": _rate(rng), "tariff_rate": _tariff(rng)},
        [
            "converted = convert_currency(price, rate)",
            "tariff = calculate_tariff(converted, tariff_rate)",
            "answer = estimate_final_value(converted, tariff)",
        ],
        [
            ["answer = estimate_final_value(price, calculate_tariff(price, tariff_rate))"],
            ["answer = convert_currency(price, rate)"],
            ["answer = estimate_final_value(price, convert_currency(price, rate))"],
        ],
        "number",
        'i["price"] * i["rate"] * (1 + i["tariff_rate"] / 100)',
    )


def trade_extreme(rng: random.Random) -> Spec:
    a, b, c = (value * 10 for value in rng.sample(range(10, 100), 3))
    highest = rng.random() < 0.5
    word, tool, wrong, builtin = (
        ("highest", "find_maximum", "find_minimum", "max")
        if highest
        else ("lowest", "find_minimum", "find_maximum", "min")
    )
    return Spec(
        f"trade_{word}",
        TRADE,
        rng.choice(TRADE_WORDINGS[f"trade_{word}"]),
        {"a": a, "b": b, "c": c},
        [f"answer = {tool}(a, b, c)"],
        [[f"answer = {wrong}(a, b, c)"], ["answer = a + b + c"], ["answer = (a + b + c) / 3"]],
        "number",
        f'{builtin}(i["a"], i["b"], i["c"])',
    )


def trade_cheaper_route(rng: random.Random) -> Spec:
    while True:
        inputs = {"price_a": _price(rng), "rate_a": _rate(rng), "price_b": _price(rng), "rate_b": _rate(rng)}
        if inputs["price_a"] * inputs["rate_a"] != inputs["price_b"] * inputs["rate_b"]:
            break
    return Spec(
        "trade_cheaper_route",
        TRADE,
        rng.choice(TRADE_WORDINGS["trade_cheaper_route"]),
        inputs,
        ["answer = find_minimum(convert_currency(price_a, rate_a), convert_currency(price_b, rate_b))"],
        [
            ["answer = find_maximum(convert_currency(price_a, rate_a), convert_currency(price_b, rate_b))"],
            ["answer = find_minimum(price_a, price_b)"],
            ["answer = convert_currency(price_a, rate_a) + convert_currency(price_b, rate_b)"],
        ],
        "number",
        'min(i["price_a"] * i["rate_a"], i["price_b"] * i["rate_b"])',
    )


def decoder_hex(rng: random.Random) -> Spec:
    return Spec(
        "decoder_hex",
        DECODER,
        "Decode the hex string to ASCII text.",
        {"hex_string": rng.choice(WORDS).encode().hex()},
        ["answer = convert_hex_to_ascii(hex_string)"],
        [["answer = hex_string"], ["answer = reverse_string(convert_hex_to_ascii(hex_string))"]],
        "text",
        'bytes.fromhex(i["hex_string"]).decode()',
    )


def decoder_reverse(rng: random.Random) -> Spec:
    return Spec(
        "decoder_reverse",
        DECODER,
        "Reverse the message.",
        {"message": rng.choice(WORDS)},
        ["answer = reverse_string(message)"],
        [["answer = message"], ["answer = caesar_decode(message, 1)"]],
        "text",
        'i["message"][::-1]',
    )


def decoder_caesar(rng: random.Random) -> Spec:
    word, shift = rng.choice(WORDS), rng.randrange(1, 10)
    encoded = "".join(chr((ord(char) - 97 + shift) % 26 + 97) for char in word)
    return Spec(
        "decoder_caesar",
        DECODER,
        "Decode the message with a Caesar cipher of the given shift.",
        {"message": encoded, "shift": shift},
        ["answer = caesar_decode(message, shift)"],
        [["answer = caesar_decode(message, shift + 1)"], ["answer = message"]],
        "text",
        '"".join(chr((ord(c) - 97 - i["shift"]) % 26 + 97) for c in i["message"])',
    )


def decoder_hex_reverse(rng: random.Random) -> Spec:
    return Spec(
        "decoder_hex_reverse",
        DECODER,
        "The hex string is a reversed message. Decode it to ASCII, then reverse it.",
        {"hex_string": rng.choice(WORDS)[::-1].encode().hex()},
        ["text = convert_hex_to_ascii(hex_string)", "answer = reverse_string(text)"],
        [["answer = convert_hex_to_ascii(hex_string)"], ["answer = reverse_string(hex_string)"]],
        "text",
        'bytes.fromhex(i["hex_string"]).decode()[::-1]',
    )


def decoder_length(rng: random.Random) -> Spec:
    return Spec(
        "decoder_length",
        DECODER,
        "How many characters does the hex string have once decoded to ASCII?",
        {"hex_string": rng.choice(WORDS).encode().hex()},
        ["answer = string_length(convert_hex_to_ascii(hex_string))"],
        [["answer = string_length(hex_string)"], ["answer = string_length(hex_string) + 1"]],
        "number",
        'len(i["hex_string"]) // 2',
    )


def _dna(rng: random.Random, length: int, alphabet: str = "ACGT") -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def dna_transcribe(rng: random.Random) -> Spec:
    return Spec(
        "dna_transcribe",
        DNA,
        "Transcribe the DNA sequence dna to mRNA.",
        {"dna": _dna(rng, rng.randrange(4, 10))},
        ["answer = transcribe_dna_to_mrna(dna)"],
        [["answer = dna"], ["answer = reverse_transcribe_mrna_to_dna(dna)"]],
        "text",
        f'i["dna"].translate({DNA_TO_MRNA})',
    )


def dna_count(rng: random.Random) -> Spec:
    sequence = _dna(rng, rng.randrange(6, 12))
    return Spec(
        "dna_count",
        DNA,
        "How many times does the base occur in the DNA sequence dna?",
        {"dna": sequence, "base": rng.choice(sorted(set(sequence)))},
        ["answer = count_nucleotides(dna)[base]"],
        [
            ["answer = len(dna)"],
            ["answer = count_nucleotides(dna)[base] + 1"],
            ["answer = len(count_nucleotides(dna))"],
        ],
        "number",
        'i["dna"].count(i["base"])',
    )


def dna_reverse_transcribe(rng: random.Random) -> Spec:
    return Spec(
        "dna_reverse_transcribe",
        DNA,
        "Reverse transcribe the mRNA sequence mrna to DNA.",
        {"mrna": _dna(rng, rng.randrange(4, 10), "ACGU")},
        ["answer = reverse_transcribe_mrna_to_dna(mrna)"],
        [["answer = mrna"], ["answer = transcribe_dna_to_mrna(mrna)"]],
        "text",
        f'i["mrna"].translate({MRNA_TO_DNA})',
    )


FAMILIES: dict[str, list[Callable[[random.Random], Spec]]] = {
    TRADE: [trade_convert, trade_tariff, trade_final_value, trade_extreme, trade_cheaper_route],
    DECODER: [decoder_hex, decoder_reverse, decoder_caesar, decoder_hex_reverse, decoder_length],
    DNA: [dna_transcribe, dna_count, dna_reverse_transcribe],
}
# the `Spec.family` names each domain's families write (trade_extreme writes two)
FAMILY_NAMES: dict[str, tuple[str, ...]] = {
    TRADE: tuple(TRADE_WORDINGS),
    DECODER: tuple(f.__name__ for f in FAMILIES[DECODER]),
    DNA: tuple(f.__name__ for f in FAMILIES[DNA]),
}
