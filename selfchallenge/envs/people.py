"""Pools and helpers for generated people (names, addresses, e-mails, payment ids), shared by both generators."""

from __future__ import annotations

import random

FIRST_NAMES = (
    "Aarav", "Abigail", "Ahmed", "Aiko", "Alejandro", "Amara", "Amelia", "Ana", "Arjun", "Ava", "Benjamin", "Bianca",
    "Carlos", "Chen", "Chloe", "Daniel", "Diego", "Elena", "Eli", "Emma", "Ethan", "Fatima", "Felix", "Grace",
    "Hana", "Harper", "Hiroshi", "Ibrahim", "Imani", "Isabella", "Ivan", "Jamal", "James", "Javier", "Jin", "Julia",
    "Kai", "Kenji", "Laila", "Leo", "Liam", "Lucas", "Luis", "Maya", "Mei", "Mia", "Mohamed", "Nadia", "Noah",
    "Nora", "Olivia", "Omar", "Priya", "Rafael", "Raj", "Rosa", "Sakura", "Samuel", "Sara", "Sofia", "Tariq",
    "Theo", "Valentina", "Wei", "Yara", "Yusuf", "Zainab", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Ahmed", "Ali", "Anderson", "Brown", "Chen", "Clark", "Costa", "Davis", "Diaz", "Evans", "Fischer",
    "Garcia", "Gonzalez", "Gupta", "Hall", "Hernandez", "Hill", "Ito", "Jackson", "Johnson", "Kim", "Kovacs",
    "Lee", "Lewis", "Li", "Lopez", "Martin", "Martinez", "Moore", "Muller", "Nakamura", "Nguyen", "Okafor",
    "Patel", "Perez", "Rossi", "Santos", "Sato", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Taylor",
    "Thomas", "Wang", "White", "Wilson", "Wright", "Yamamoto", "Young", "Zhang",
)  # fmt: skip
STREETS = (
    "Maple Drive", "Oak Street", "Pine Lane", "Cedar Avenue", "Elm Street", "Hillcrest Drive", "Lakeview Drive",
    "Main Street", "Park Avenue", "River Road", "Sunset Drive", "Willow Lane", "Highland Avenue", "Broadway",
    "Spruce Street", "Chestnut Street", "Laurel Lane", "Washington Avenue", "Lincoln Avenue", "Forest Street",
)  # fmt: skip
# (city, state, first three digits of its zip codes)
CITIES = (
    ("Austin", "TX", "787"), ("Boston", "MA", "021"), ("Charlotte", "NC", "282"), ("Chicago", "IL", "606"),
    ("Columbus", "OH", "432"), ("Dallas", "TX", "752"), ("Denver", "CO", "802"), ("Detroit", "MI", "482"),
    ("Fort Worth", "TX", "761"), ("Houston", "TX", "770"), ("Indianapolis", "IN", "462"),
    ("Jacksonville", "FL", "322"), ("Los Angeles", "CA", "900"), ("Miami", "FL", "331"),
    ("Minneapolis", "MN", "554"), ("Nashville", "TN", "372"), ("New York", "NY", "100"),
    ("Philadelphia", "PA", "191"), ("Phoenix", "AZ", "850"), ("Portland", "OR", "972"),
    ("San Antonio", "TX", "782"), ("San Diego", "CA", "921"), ("San Francisco", "CA", "941"),
    ("San Jose", "CA", "951"), ("Seattle", "WA", "981"), ("Washington", "DC", "200"),
)  # fmt: skip
CARD_BRANDS = ("visa", "mastercard")


def pick_name(rng: random.Random) -> dict[str, str]:
    return {"first_name": rng.choice(FIRST_NAMES), "last_name": rng.choice(LAST_NAMES)}


def make_address(rng: random.Random) -> dict[str, str]:
    city, state, zip_prefix = rng.choice(CITIES)
    return {
        "address1": f"{rng.randint(100, 999)} {rng.choice(STREETS)}",
        "address2": f"Suite {rng.randint(100, 999)}",
        "city": city,
        "country": "USA",
        "state": state,
        "zip": f"{zip_prefix}{rng.randint(0, 99):02d}",
    }


def make_email(rng: random.Random, name: dict[str, str]) -> str:
    return f"{name['first_name'].lower()}.{name['last_name'].lower()}{rng.randint(1000, 9999)}@example.com"


def make_dob(rng: random.Random, first_year: int = 1950, last_year: int = 2005) -> str:
    return f"{rng.randint(first_year, last_year)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


class UniqueIds:
    """Draws random ids that are unique within one world (digits of a fixed width, optionally prefixed)."""

    def __init__(self, rng: random.Random, reserved: set[str] | None = None):
        self._rng = rng
        self._used: set[str] = set(reserved or ())

    def digits(self, width: int, prefix: str = "") -> str:
        while True:
            candidate = prefix + str(self._rng.randint(10 ** (width - 1), 10**width - 1))
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate

    def chars(self, width: int, alphabet: str) -> str:
        while True:
            candidate = "".join(self._rng.choice(alphabet) for _ in range(width))
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate

    def user_id(self, name: dict[str, str]) -> str:
        return self.digits(4, prefix=f"{name['first_name'].lower()}_{name['last_name'].lower()}_")
