"""The 14 airline tools, with tau-bench v1's semantics (spec: docs benchmarks-spec.md section 1.2).

Each tool is `tool(data, **arguments) -> str` over the live database `{"flights","reservations","users"}`. A refused
call raises `ToolError(<tau-bench message>)`. v1's quirks are kept on purpose, because the gold hashes depend on
them: booking does not take seats, a flight change does not update the reservation's cabin, gift cards hold
`amount` (not `balance`), and one-stop search merges leg 2 with its status on leg 1's date.
"""

from __future__ import annotations

import copy
import json

from ..taubench import ToolError, calculate, think, transfer_to_human_agents

AIRPORTS = {
    "SFO": "San Francisco",
    "JFK": "New York",
    "LAX": "Los Angeles",
    "ORD": "Chicago",
    "DFW": "Dallas",
    "DEN": "Denver",
    "SEA": "Seattle",
    "ATL": "Atlanta",
    "MIA": "Miami",
    "BOS": "Boston",
    "PHX": "Phoenix",
    "IAH": "Houston",
    "LAS": "Las Vegas",
    "MCO": "Orlando",
    "EWR": "Newark",
    "CLT": "Charlotte",
    "MSP": "Minneapolis",
    "DTW": "Detroit",
    "PHL": "Philadelphia",
    "LGA": "LaGuardia",
}
CABINS = ("basic_economy", "economy", "business")
# A task books at most three reservations and sends at most three certificates (tau-bench's fixed ids).
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
NEW_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")
CURRENT_TIME = "2024-05-15T15:00:00"


def _reservation(data: dict, reservation_id: str, message: str = "reservation not found") -> dict:
    reservation = data["reservations"].get(reservation_id)
    if reservation is None:
        raise ToolError(message)
    return reservation


def _user(data: dict, user_id: str) -> dict:
    user = data["users"].get(user_id)
    if user is None:
        raise ToolError("user not found")
    return user


def _bookable_date(data: dict, segment: dict, cabin: str, passenger_count: int) -> tuple[dict, dict]:
    """(flight, its record on the segment's date) when it can be booked in `cabin` for that many passengers.

    The segment's fields are read in tau-bench's order (flight number first), so a bad segment fails the same way.
    """
    flight_number = segment["flight_number"]
    if flight_number not in data["flights"]:
        raise ToolError(f"flight {flight_number} not found")
    flight = data["flights"][flight_number]
    if segment["date"] not in flight["dates"]:
        raise ToolError(f"flight {flight_number} not found on date {segment['date']}")
    on_date = flight["dates"][segment["date"]]
    if on_date["status"] != "available":
        raise ToolError(f"flight {flight_number} not available on date {segment['date']}")
    if on_date["available_seats"][cabin] < passenger_count:
        raise ToolError(f"not enough seats on flight {flight_number}")
    return flight, on_date


def _update_payment_method(data: dict, reservation: dict, payment_id: str, cost: float) -> dict:
    """The user's method for paying `cost` on an existing reservation (no certificates; gift cards must cover it)."""
    methods = data["users"][reservation["user_id"]]["payment_methods"]
    if payment_id not in methods:
        raise ToolError("payment method not found")
    method = methods[payment_id]
    if method["source"] == "certificate":
        raise ToolError("certificate cannot be used to update reservation")
    if method["source"] == "gift_card" and method["amount"] < cost:
        raise ToolError("gift card balance is not enough")
    return method


# --- writes -----------------------------------------------------------------------------------------------


def book_reservation(
    data: dict,
    user_id: str,
    origin: str,
    destination: str,
    flight_type: str,
    cabin: str,
    flights: list[dict],
    passengers: list[dict],
    payment_methods: list[dict],
    total_baggages: int,
    nonfree_baggages: int,
    insurance: str,
) -> str:
    """Book a reservation; the payments must add up to the exact total. Returns the reservation as JSON."""
    user = _user(data, user_id)
    reservation_id = next((rid for rid in NEW_RESERVATION_IDS[:-1] if rid not in data["reservations"]), "HATHAV")
    segments = copy.deepcopy(flights)
    passengers = copy.deepcopy(passengers)
    payment_methods = copy.deepcopy(payment_methods)
    total_price = 0
    for segment in segments:
        flight, on_date = _bookable_date(data, segment, cabin, len(passengers))
        segment["price"] = on_date["prices"][cabin]
        segment["origin"] = flight["origin"]
        segment["destination"] = flight["destination"]
        total_price += segment["price"] * len(passengers)
    if insurance == "yes":
        total_price += 30 * len(passengers)
    total_price += 50 * nonfree_baggages
    methods = user["payment_methods"]
    for payment in payment_methods:
        payment_id, amount = payment["payment_id"], payment["amount"]
        if payment_id not in methods:
            raise ToolError(f"payment method {payment_id} not found")
        if methods[payment_id]["source"] in ("gift_card", "certificate") and methods[payment_id]["amount"] < amount:
            raise ToolError(f"not enough balance in payment method {payment_id}")
    paid = sum(payment["amount"] for payment in payment_methods)
    if paid != total_price:
        raise ToolError(f"payment amount does not add up, total price is {total_price}, but paid {paid}")
    for payment in payment_methods:
        method = methods[payment["payment_id"]]
        if method["source"] == "gift_card":
            method["amount"] -= payment["amount"]
        elif method["source"] == "certificate":
            del methods[payment["payment_id"]]  # a certificate is used up whole, whatever was paid with it
    reservation = {
        "reservation_id": reservation_id,
        "user_id": user_id,
        "origin": origin,
        "destination": destination,
        "flight_type": flight_type,
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": payment_methods,
        "created_at": CURRENT_TIME,
        "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    }
    data["reservations"][reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return json.dumps(reservation)


def cancel_reservation(data: dict, reservation_id: str) -> str:
    """Cancel a whole reservation: every payment is refunded (a negated copy is appended). No policy checks."""
    reservation = _reservation(data, reservation_id)
    history = reservation["payment_history"]
    history.extend([{"payment_id": payment["payment_id"], "amount": -payment["amount"]} for payment in history])
    reservation["status"] = "cancelled"
    return json.dumps(reservation)


def send_certificate(data: dict, user_id: str, amount: float) -> str:
    """Give a user a travel certificate worth `amount` (a compensation gesture)."""
    user = _user(data, user_id)
    for payment_id in NEW_CERTIFICATE_IDS:
        if payment_id not in user["payment_methods"]:
            user["payment_methods"][payment_id] = {"source": "certificate", "amount": amount, "id": payment_id}
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    raise ToolError(f"user {user_id} already holds the certificates this tool can issue")


def update_reservation_baggages(
    data: dict, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> str:
    """Set the bag counts; each added non-free bag costs $50, paid with `payment_id`."""
    reservation = _reservation(data, reservation_id)
    cost = 50 * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    method = _update_payment_method(data, reservation, payment_id, cost)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    if method["source"] == "gift_card":
        method["amount"] -= cost
    if cost != 0:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": cost})
    return json.dumps(reservation)


def update_reservation_flights(
    data: dict, reservation_id: str, cabin: str, flights: list[dict], payment_id: str
) -> str:
    """Replace the whole itinerary (and price it in `cabin`); the difference is paid or refunded via `payment_id`."""
    reservation = _reservation(data, reservation_id)
    passenger_count = len(reservation["passengers"])
    segments = copy.deepcopy(flights)
    total_price = 0
    for segment in segments:
        # A segment already in the reservation keeps its old price, as long as the cabin stays the same.
        kept = [
            old
            for old in reservation["flights"]
            if old["flight_number"] == segment["flight_number"]
            and old["date"] == segment["date"]
            and cabin == reservation["cabin"]
        ]
        if kept:
            segment["price"] = kept[0]["price"]
            segment["origin"] = kept[0]["origin"]
            segment["destination"] = kept[0]["destination"]
        else:
            flight, on_date = _bookable_date(data, segment, cabin, passenger_count)
            segment["price"] = on_date["prices"][cabin]
            segment["origin"] = flight["origin"]
            segment["destination"] = flight["destination"]
        total_price += segment["price"] * passenger_count
    total_price -= sum(old["price"] for old in reservation["flights"]) * passenger_count
    method = _update_payment_method(data, reservation, payment_id, total_price)
    if method["source"] == "gift_card":
        method["amount"] -= total_price
    reservation["flights"] = segments  # v1 leaves reservation["cabin"] as it was
    if total_price != 0:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": total_price})
    return json.dumps(reservation)


def update_reservation_passengers(data: dict, reservation_id: str, passengers: list[dict]) -> str:
    """Replace the passenger list; the number of passengers cannot change."""
    reservation = _reservation(data, reservation_id)
    if len(passengers) != len(reservation["passengers"]):
        raise ToolError("number of passengers does not match")
    reservation["passengers"] = copy.deepcopy(passengers)
    return json.dumps(reservation)


# --- reads ------------------------------------------------------------------------------------------------


def get_reservation_details(data: dict, reservation_id: str) -> str:
    """The reservation record as JSON."""
    return json.dumps(_reservation(data, reservation_id, message="user not found"))  # sic: tau-bench's message


def get_user_details(data: dict, user_id: str) -> str:
    """The user record as JSON."""
    return json.dumps(_user(data, user_id))


def list_all_airports(data: dict) -> str:
    """JSON object IATA code -> city for the 20 airports served."""
    return json.dumps(AIRPORTS)


def _flight_on(flight: dict, on_date: dict) -> dict:
    """The flight record without `dates`, merged with one date's record."""
    merged = {key: value for key, value in flight.items() if key != "dates"}
    merged.update(on_date)
    return merged


def search_direct_flight(data: dict, origin: str, destination: str, date: str) -> str:
    """Direct flights origin -> destination that can be booked on `date`, as a JSON list."""
    results = []
    for flight in data["flights"].values():
        if flight["origin"] == origin and flight["destination"] == destination:
            on_date = flight["dates"].get(date)
            if on_date is not None and on_date["status"] == "available":
                results.append(_flight_on(flight, on_date))
    return json.dumps(results)


def search_onestop_flight(data: dict, origin: str, destination: str, date: str) -> str:
    """Pairs [leg 1, leg 2] from origin via one stop to destination, leaving on `date`, as a JSON list."""
    flights = data["flights"].values()
    results = []
    for first in flights:
        if first["origin"] != origin:
            continue
        for second in flights:
            if second["destination"] != destination or first["destination"] != second["origin"]:
                continue
            arrival = first["scheduled_arrival_time_est"]
            # Next-day connection when leg 1 lands after midnight; the day is not zero-padded (as upstream).
            second_date = f"2024-05-{int(date[-2:]) + 1}" if "+1" in arrival else date
            if arrival > second["scheduled_departure_time_est"]:
                continue
            if date not in first["dates"] or second_date not in second["dates"]:
                continue
            if first["dates"][date]["status"] != "available" or second["dates"][second_date]["status"] != "available":
                continue
            leg1 = _flight_on(first, first["dates"][date])
            leg1["date"] = date
            leg2 = _flight_on(second, second["dates"][date])  # sic: leg 2's record on leg 1's date (v1 quirk)
            leg2["date"] = second_date
            results.append([leg1, leg2])
    return json.dumps(results)


# In tau-bench's ALL_TOOLS order.
AIRLINE_TOOLS = {
    function.__name__: function
    for function in (
        book_reservation,
        calculate,
        cancel_reservation,
        get_reservation_details,
        get_user_details,
        list_all_airports,
        search_direct_flight,
        search_onestop_flight,
        send_certificate,
        think,
        transfer_to_human_agents,
        update_reservation_baggages,
        update_reservation_flights,
        update_reservation_passengers,
    )
}
