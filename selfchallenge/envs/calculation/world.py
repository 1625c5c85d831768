"""Travel tables for `travel_itinerary_planning`: loaded from a benchmark data folder or generated from a seed.

A world is {"source", "locations", "flights", "hotels"}:
- flights: [{"from_location", "to_location", "date" (YYYY-MM-DD), "price" (int)}];
- hotels: [{"location", "preferences" [amenities], "price_per_night" (int), "rating" (1-5)}].
The benchmark's locations are the 3-character strings '"A"' ... '"F"' (literal quotes, as upstream); the tools
strip quotes, so both '"A"' and 'A' work. Generated worlds use plain city names.

Worlds are cached per source and must be treated as read-only (the tools hand out copies).
"""

from __future__ import annotations

import datetime
import json
import os
import random

_CACHE: dict[tuple, dict] = {}

CITIES = (
    "Amsterdam", "Athens", "Bangkok", "Barcelona", "Berlin", "Boston", "Cairo", "Chicago", "Dubai", "Dublin",
    "Havana", "Istanbul", "Kyoto", "Lima", "Lisbon", "London", "Madrid", "Marrakesh", "Mexico City", "Montreal",
    "Mumbai", "Nairobi", "Oslo", "Paris", "Prague", "Rome", "Seoul", "Sydney", "Tokyo", "Vienna",
)  # fmt: skip
AMENITIES = ("wifi", "pool", "gym", "spa", "parking", "breakfast")
# wifi is common, spa rare: sampling weights for a hotel's amenity list.
_AMENITY_WEIGHTS = (8, 4, 4, 1, 2, 2)


def load_travel_world(data_dir: str) -> dict:
    """The benchmark's travel tables from `<data_dir>/tables.json` (layout of shared/data/m3tooleval)."""
    path = os.path.join(os.path.abspath(data_dir), "tables.json")
    key = ("data", path)
    if key not in _CACHE:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"env_config.data_dir={data_dir!r} has no tables.json; point data_dir at a folder laid out like "
                "shared/data/m3tooleval, or drop data_dir to use a generated world (env_config.seed)"
            )
        with open(path, encoding="utf-8") as handle:
            tables = json.load(handle)
        try:
            travel = tables["travel"]
            world = {
                "source": f"data:{path}",
                "locations": list(travel["LOC"]),
                "flights": list(travel["flights"]),
                "hotels": list(travel["hotels"]),
            }
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: expected travel.LOC, travel.flights and travel.hotels ({exc!r})") from exc
        _CACHE[key] = world
    return _CACHE[key]


def generate_travel_world(seed: int = 0) -> dict:
    """A random world with the benchmark's shape: 5-8 cities, chained multi-city itineraries (so multi-leg trip
    questions have answers), extra one-off flights, and 1-4 hotels per city with amenity lists."""
    key = ("seed", seed)
    if key not in _CACHE:
        _CACHE[key] = _generate(random.Random(f"travel-world-{seed}"), seed)
    return _CACHE[key]


def _generate(rng: random.Random, seed: int) -> dict:
    locations = rng.sample(CITIES, rng.randint(5, 8))
    start = datetime.date(rng.choice((2023, 2024, 2025)), rng.randint(1, 12), 1)

    def day(offset: int) -> str:
        return (start + datetime.timedelta(days=offset)).isoformat()

    flights: list[dict] = []

    def add_flights(origin: str, destination: str, date: str) -> None:
        # One to three carriers on the same route and day, at different prices.
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            flights.append(
                {"from_location": origin, "to_location": destination, "date": date, "price": rng.randrange(80, 990, 5)}
            )

    for _ in range(rng.randint(4, 6)):
        here = rng.choice(locations)
        offset = rng.randint(0, 150)
        for _ in range(rng.randint(1, 4)):
            there = rng.choice([loc for loc in locations if loc != here])
            add_flights(here, there, day(offset))
            offset += rng.randint(1, 6)
            here = there
    for _ in range(rng.randint(4, 10)):
        origin, destination = rng.sample(locations, 2)
        add_flights(origin, destination, day(rng.randint(0, 180)))

    hotels = []
    for location in locations:
        for _ in range(rng.randint(1, 4)):
            amenities: list[str] = []
            for _ in range(rng.randint(1, 3)):
                pick = rng.choices(AMENITIES, weights=_AMENITY_WEIGHTS)[0]
                if pick not in amenities:
                    amenities.append(pick)
            hotels.append(
                {
                    "location": location,
                    "preferences": amenities,
                    "price_per_night": rng.randrange(40, 320, 5),
                    "rating": rng.randint(2, 5),
                }
            )
    return {"source": f"seed:{seed}", "locations": locations, "flights": flights, "hotels": hotels}


def travel_world(env_config: dict) -> dict:
    """The world an env_config selects: `data_dir` wins over `seed` (default 0)."""
    data_dir = env_config.get("data_dir")
    if data_dir:
        return load_travel_world(str(data_dir))
    return generate_travel_world(int(env_config.get("seed", 0)))
