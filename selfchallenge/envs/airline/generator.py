"""A seeded generator of airline worlds with tau-bench's schema ({"flights","reservations","users"}).

Same seed and sizes -> the same world. Flights run between the 20 airports (in both directions) on every date of
May 2024: before the 15th they have landed or were cancelled, on the 15th (today, 15:00 EST) they have landed, are
flying, on time, delayed or cancelled, and afterwards they are available with seats and prices per cabin.
Reservations use real flights (direct or one stop, one way or round trip) and pay exactly what tau-bench's pricing
gives (fare x passengers + $30 insurance per passenger + $50 per non-free bag).
"""

from __future__ import annotations

import datetime
import random
import string

from ..people import CARD_BRANDS, UniqueIds, make_address, make_dob, make_email, pick_name
from .tools import AIRPORTS, CABINS, CURRENT_TIME, NEW_CERTIFICATE_IDS, NEW_RESERVATION_IDS

DEFAULT_SIZES = {"num_users": 40, "num_flights": 60, "num_reservations": 100}
DAYS = range(1, 31)
TODAY = 15
NOW_MINUTES = 15 * 60
FARE_RANGES = {"basic_economy": (50, 100), "economy": (100, 200), "business": (200, 500)}
CERTIFICATE_VALUES = (100, 150, 250, 500)
MEMBERSHIPS = ("regular", "silver", "gold")
HUBS_PER_WORLD = 4


def _date(day: int) -> str:
    return f"2024-05-{day:02d}"


def _clock(minutes: int) -> str:
    """'HH:MM:SS' for minutes after midnight of the departure day, with '+1' when it falls on the next day."""
    suffix = "+1" if minutes >= 24 * 60 else ""
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00{suffix}"


def _stamp(day: int, minutes: int) -> str:
    moment = datetime.datetime(2024, 5, day) + datetime.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _status_on(rng: random.Random, day: int, departure: int, duration: int, forced: str | None = None) -> dict:
    """One date's record for a flight leaving at `departure` minutes and flying `duration` minutes."""
    if day > TODAY:
        return {
            "status": "available",
            "available_seats": {cabin: rng.randint(0, 20) for cabin in CABINS},
            "prices": {cabin: rng.randint(*FARE_RANGES[cabin]) for cabin in CABINS},
        }
    if day < TODAY:
        if forced == "cancelled" or rng.random() < 0.06:
            return {"status": "cancelled"}
        left = departure + rng.randint(-30, 40)
        return {
            "status": "landed",
            "actual_departure_time_est": _stamp(day, left),
            "actual_arrival_time_est": _stamp(day, left + duration + rng.randint(-20, 20)),
        }
    # Today: what has happened by 15:00 depends on the schedule.
    if departure + duration <= NOW_MINUTES:
        status = "cancelled" if rng.random() < 0.05 else "landed"
    elif departure <= NOW_MINUTES:
        status = "flying"
    else:
        status = forced or rng.choice(("on time", "on time", "delayed", "cancelled"))
    if status == "cancelled":
        return {"status": status}
    if status == "landed":
        return {
            "status": status,
            "actual_departure_time_est": _stamp(day, departure),
            "actual_arrival_time_est": _stamp(day, departure + duration),
        }
    if status == "flying":
        return {
            "status": status,
            "actual_departure_time_est": _stamp(day, departure + rng.randint(0, 20)),
            "estimated_arrival_time_est": _stamp(day, departure + duration + rng.randint(-10, 25)),
        }
    delay = rng.randint(60, 300) if status == "delayed" else 0
    return {
        "status": status,
        "estimated_departure_time_est": _stamp(day, departure + delay),
        "estimated_arrival_time_est": _stamp(day, departure + delay + duration),
    }


# (departure, duration, status forced today) of the first flights, so that even a small world shows every status:
# HAT001 is in the air at 15:00 (and is cancelled on May 3), HAT002 is on time, HAT003 is delayed and lands after
# midnight ("+1").
_FIXED_SCHEDULES = ((12 * 60, 240, None), (18 * 60, 150, "on time"), (22 * 60, 180, "delayed"))
_FIXED_CANCELLATION = ("HAT001", 3)


def _flights(rng: random.Random, count: int) -> dict:
    airports = sorted(AIRPORTS)
    hubs = rng.sample(airports, HUBS_PER_WORLD)
    flights: dict = {}
    while len(flights) < count:
        # Routes come in pairs (there and back); most touch a hub, so one-stop connections exist.
        first = rng.choice(hubs)
        second = rng.choice([code for code in airports if code != first])
        if rng.random() < 0.5:
            first, second = second, first
        for origin, destination in ((first, second), (second, first)):
            if len(flights) == count:
                break
            index = len(flights)
            if index < len(_FIXED_SCHEDULES):
                departure, duration, today = _FIXED_SCHEDULES[index]
            else:
                departure, duration, today = rng.randint(0, 47) * 30, rng.randint(2, 12) * 30, None
            flight_number = f"HAT{index + 1:03d}"
            dates = {}
            for day in DAYS:
                forced = today if day == TODAY else None
                if (flight_number, day) == _FIXED_CANCELLATION:
                    forced = "cancelled"
                dates[_date(day)] = _status_on(rng, day, departure, duration, forced)
            flights[flight_number] = {
                "flight_number": flight_number,
                "origin": origin,
                "destination": destination,
                "scheduled_departure_time_est": _clock(departure),
                "scheduled_arrival_time_est": _clock(departure + duration),
                "dates": dates,
            }
    return flights


def _users(rng: random.Random, ids: UniqueIds, count: int) -> dict:
    users = {}
    for index in range(count):
        name = pick_name(rng)
        user_id = ids.user_id(name)
        methods = {}
        for _ in range(rng.randint(1, 2)):
            card_id = ids.digits(7, prefix="credit_card_")
            brand = rng.choice(CARD_BRANDS)
            methods[card_id] = {
                "source": "credit_card",
                "brand": brand,
                "last_four": f"{rng.randint(0, 9999):04d}",
                "id": card_id,
            }
        for _ in range(rng.choice((0, 1, 1, 2))):
            gift_id = ids.digits(7, prefix="gift_card_")
            methods[gift_id] = {"source": "gift_card", "amount": rng.randint(0, 300), "id": gift_id}
        for _ in range(rng.choice((0, 1, 1, 2)) if index % 3 else 1):
            certificate_id = ids.digits(7, prefix="certificate_")
            methods[certificate_id] = {
                "source": "certificate",
                "amount": rng.choice(CERTIFICATE_VALUES),
                "id": certificate_id,
            }
        saved = []
        for _ in range(rng.randint(0, 2)):
            saved.append({**pick_name(rng), "dob": make_dob(rng)})
        users[user_id] = {
            "name": name,
            "address": make_address(rng),
            "email": make_email(rng, name),
            "dob": make_dob(rng, 1950, 2002),
            "payment_methods": methods,
            "saved_passengers": saved,
            "membership": MEMBERSHIPS[index % 3] if index < 3 else rng.choice(MEMBERSHIPS),
            "reservations": [],
        }
    return users


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:5]) + (24 * 60 if clock.endswith("+1") else 0)


def _connections(flights: dict) -> dict[str, list[tuple[str, str]]]:
    """flight number -> [(next flight, day offset)] it connects to at its destination."""
    by_origin: dict[str, list[dict]] = {}
    for flight in flights.values():
        by_origin.setdefault(flight["origin"], []).append(flight)
    links = {}
    for number, flight in flights.items():
        arrival = _minutes(flight["scheduled_arrival_time_est"])
        links[number] = [
            (nxt["flight_number"], arrival // (24 * 60))
            for nxt in by_origin.get(flight["destination"], [])
            if nxt["destination"] != flight["origin"]
            and _minutes(nxt["scheduled_departure_time_est"]) + 24 * 60 * (arrival // (24 * 60)) >= arrival + 45
        ]
    return links


def _route(rng: random.Random, flights: dict, links: dict) -> list[tuple[str, int]] | None:
    """An outbound itinerary [(flight number, day offset)], direct or one stop."""
    first = rng.choice(sorted(flights))
    if links[first] and rng.random() < 0.35:
        second, offset = rng.choice(links[first])
        return [(first, 0), (second, offset)]
    return [(first, 0)]


def _return_route(flights: dict, outbound: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
    """The same legs backwards (each route has a reverse flight), if their times still connect."""
    legs = []
    for number, _ in reversed(outbound):
        flight = flights[number]
        back = sorted(
            key
            for key, f in flights.items()
            if f["origin"] == flight["destination"] and f["destination"] == flight["origin"]
        )
        if not back:
            return None
        legs.append(back[0])
    if len(legs) == 1:
        return [(legs[0], 0)]
    arrival = _minutes(flights[legs[0]]["scheduled_arrival_time_est"])
    if _minutes(flights[legs[1]]["scheduled_departure_time_est"]) >= arrival + 45:
        return [(legs[0], 0), (legs[1], 0)]
    return None


def _segment(rng: random.Random, flights: dict, number: str, day: int, cabin: str) -> dict:
    flight = flights[number]
    on_date = flight["dates"][_date(day)]
    price = on_date["prices"][cabin] if on_date["status"] == "available" else rng.randint(*FARE_RANGES[cabin])
    return {
        "origin": flight["origin"],
        "destination": flight["destination"],
        "flight_number": number,
        "date": _date(day),
        "price": price,
    }


def _created_at(rng: random.Random, first_day: int) -> str:
    """A booking time before the first flight and before now; some within the last 24 hours."""
    now = datetime.datetime.fromisoformat(CURRENT_TIME)
    latest = min(now, datetime.datetime(2024, 5, first_day)) - datetime.timedelta(minutes=1)
    if latest == now - datetime.timedelta(minutes=1) and rng.random() < 0.15:
        earliest = now - datetime.timedelta(hours=23)
    else:
        earliest = datetime.datetime(2024, 4, 20)
    seconds = int((latest - earliest).total_seconds())
    return (earliest + datetime.timedelta(seconds=rng.randint(0, max(seconds, 0)))).strftime("%Y-%m-%dT%H:%M:%S")


def _passengers(rng: random.Random, user: dict) -> list[dict]:
    count = rng.choices((1, 2, 3, 4), (0.45, 0.33, 0.16, 0.06))[0]
    people = []
    if rng.random() < 0.7:
        people.append({**user["name"], "dob": user["dob"]})
    people.extend(dict(person) for person in user["saved_passengers"])
    while len(people) < count:
        people.append({**pick_name(rng), "dob": make_dob(rng)})
    return people[:count]


def _reservation(rng: random.Random, ids: UniqueIds, flights: dict, links: dict, user_id: str, user: dict) -> dict:
    cabin = rng.choice(CABINS)
    outbound = _route(rng, flights, links)
    last_offset = outbound[-1][1]
    day = rng.randint(1, 28 - last_offset)
    legs = [(number, day + offset) for number, offset in outbound]
    flight_type = "one_way"
    back = _return_route(flights, outbound) if rng.random() < 0.5 else None
    return_day = legs[-1][1] + rng.randint(1, 5)
    if back is not None and return_day <= 30:
        flight_type = "round_trip"
        legs += [(number, return_day + offset) for number, offset in back]
    segments = [_segment(rng, flights, number, leg_day, cabin) for number, leg_day in legs]
    passengers = _passengers(rng, user)
    insurance = rng.choice(("yes", "no"))
    total_baggages = rng.randint(0, 2 * len(passengers))
    nonfree_baggages = rng.randint(0, total_baggages) if rng.random() < 0.3 else 0
    total = sum(segment["price"] for segment in segments) * len(passengers)
    total += (30 * len(passengers) if insurance == "yes" else 0) + 50 * nonfree_baggages
    payers = sorted(k for k, m in user["payment_methods"].items() if m["source"] in ("credit_card", "gift_card"))
    reservation = {
        "reservation_id": ids.chars(6, string.ascii_uppercase + string.digits),
        "user_id": user_id,
        "origin": segments[0]["origin"],
        "destination": flights[outbound[-1][0]]["destination"],
        "flight_type": flight_type,
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": [{"payment_id": rng.choice(payers), "amount": total}],
        "created_at": _created_at(rng, day),
        "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    }
    if rng.random() < 0.05:
        reservation["payment_history"].append(
            {"payment_id": reservation["payment_history"][0]["payment_id"], "amount": -total}
        )
        reservation["status"] = "cancelled"
    return reservation


def generate_world(seed: int = 0, num_users: int = 40, num_flights: int = 60, num_reservations: int = 100) -> dict:
    """An airline database {"flights","reservations","users"}; deterministic in (seed, sizes)."""
    rng = random.Random(f"airline-world:{seed}")
    # tau-bench's ids for new reservations and certificates must stay free.
    ids = UniqueIds(rng, reserved=set(NEW_RESERVATION_IDS) | set(NEW_CERTIFICATE_IDS))
    flights = _flights(rng, num_flights)
    links = _connections(flights)
    users = _users(rng, ids, num_users)
    user_ids = list(users)
    reservations = {}
    for _ in range(num_reservations):
        user_id = rng.choice(user_ids)
        reservation = _reservation(rng, ids, flights, links, user_id, users[user_id])
        reservations[reservation["reservation_id"]] = reservation
        users[user_id]["reservations"].append(reservation["reservation_id"])
    return {"flights": flights, "reservations": reservations, "users": users}
