"""Challenger-only discovery tools for airline: a random user with their reservations, a random bookable flight.
Read-only; never given to the executor (see `Environment.discovery_tools`)."""

from __future__ import annotations

import json
import random

from ..retail.schemas import function_schema, string
from ..taubench import ToolError, pick_user


def _reservation_view(reservation: dict) -> dict:
    keys = ("reservation_id", "origin", "destination", "flight_type", "cabin", "total_baggages", "nonfree_baggages")
    view = {key: reservation.get(key) for key in keys}
    view["flights"] = [
        {k: f[k] for k in ("flight_number", "date", "origin", "destination")} for f in reservation["flights"]
    ]
    view["passengers"] = len(reservation.get("passengers", []))
    view["insurance"] = reservation.get("insurance")
    view["created_at"] = reservation.get("created_at")
    if reservation.get("status"):
        view["status"] = reservation["status"]
    return view


def random_user(data: dict, rng: random.Random) -> str:
    """A random user: id, name, membership, payment methods, saved passengers and every reservation."""
    user_id, user, methods = pick_user(data, rng)
    reservations = [data["reservations"][r] for r in user.get("reservations", []) if r in data["reservations"]]
    view = {
        "user_id": user_id,
        "name": user["name"],
        "membership": user.get("membership"),
        "payment_methods": methods,
        "saved_passengers": user.get("saved_passengers", []),
        "reservations": [_reservation_view(reservation) for reservation in reservations],
    }
    return json.dumps(view)


def random_flight(data: dict, rng: random.Random, date: str = "") -> str:
    """A random flight that can be booked (status available), on `date` (YYYY-MM-DD) if given."""
    choices = [
        (number, day)
        for number, flight in sorted(data["flights"].items())
        for day, status in sorted(flight["dates"].items())
        if status.get("status") == "available" and (not date or day == date)
    ]
    if not choices:
        raise ToolError(f"no available flight on {date}" if date else "no available flight in this world")
    number, day = rng.choice(choices)
    flight = data["flights"][number]
    view = {key: value for key, value in flight.items() if key != "dates"}
    return json.dumps({**view, "date": day, **flight["dates"][day]})


DISCOVERY_FUNCTIONS = {"random_user": random_user, "random_flight": random_flight}
DISCOVERY_SCHEMAS = [
    function_schema(
        "random_user",
        "Challenger only: a random user of this world with their id, name, membership, payment methods, saved "
        "passengers and reservations.",
    ),
    function_schema(
        "random_flight",
        "Challenger only: a random flight that can be booked, with its route, times, seats and prices.",
        {"date": string("a date YYYY-MM-DD, or empty for any date")},
        required=[],
    ),
]
