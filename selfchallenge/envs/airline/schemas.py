"""OpenAI function schemas of the airline tools (names, argument names, types, enums and required as tau-bench)."""

from __future__ import annotations

from ..retail.schemas import CALCULATE, THINK, TRANSFER_TO_HUMAN_AGENTS, function_schema, string
from .tools import CABINS

_RESERVATION_ID = string("The reservation id, six characters such as 'ZFA04Y'.")
_USER_ID = string("The user id, such as 'sara_doe_496'.")
_PAYMENT_ID = string(
    "The id of a payment method in the user's profile, such as 'credit_card_7815826' or 'gift_card_7815826'."
)
_CABIN = {"type": "string", "enum": list(CABINS)}
_DATE = string("The date in the format 'YYYY-MM-DD', such as '2024-05-01'.")
_AIRPORT = "The IATA code of the {} airport, such as '{}'."


def _object_list(description: str, properties: dict) -> dict:
    return {
        "type": "array",
        "description": description,
        "items": {"type": "object", "properties": properties, "required": list(properties)},
    }


_SEGMENTS = {"flight_number": string("The flight number, such as 'HAT001'."), "date": _DATE}
_PASSENGER = {
    "first_name": string("The passenger's first name, such as 'Noah'."),
    "last_name": string("The passenger's last name, such as 'Brown'."),
    "dob": string("The passenger's date of birth in the format 'YYYY-MM-DD', such as '1990-01-01'."),
}

AIRLINE_TOOL_SCHEMAS = [
    function_schema(
        "book_reservation",
        "Book a reservation. The payments must add up exactly to the total: flight prices times passengers, plus "
        "$30 per passenger with insurance, plus $50 per non-free bag.",
        {
            "user_id": _USER_ID,
            "origin": string(_AIRPORT.format("origin", "SFO")),
            "destination": string(_AIRPORT.format("destination", "JFK")),
            "flight_type": {"type": "string", "enum": ["one_way", "round_trip"]},
            "cabin": _CABIN,
            "flights": _object_list("Every flight segment of the trip, in order.", _SEGMENTS),
            "passengers": _object_list("Every passenger (at most five).", _PASSENGER),
            "payment_methods": _object_list(
                "How the total is split over the user's payment methods.",
                {"payment_id": _PAYMENT_ID, "amount": {"type": "number", "description": "The amount to pay."}},
            ),
            "total_baggages": {"type": "integer", "description": "Total number of checked bags."},
            "nonfree_baggages": {"type": "integer", "description": "Number of checked bags that must be paid for."},
            "insurance": {"type": "string", "enum": ["yes", "no"]},
        },
    ),
    CALCULATE,
    function_schema(
        "cancel_reservation",
        "Cancel a whole reservation; its payments are refunded.",
        {"reservation_id": _RESERVATION_ID},
    ),
    function_schema(
        "get_reservation_details",
        "Show a reservation: flights, passengers, cabin, bags, insurance, payments.",
        {"reservation_id": _RESERVATION_ID},
    ),
    function_schema(
        "get_user_details",
        "Show a user's profile: name, address, date of birth, membership, payment methods, saved passengers and "
        "reservation ids.",
        {"user_id": _USER_ID},
    ),
    function_schema("list_all_airports", "List the airports served, as IATA code -> city."),
    function_schema(
        "search_direct_flight",
        "Search direct flights between two airports that can be booked on a date.",
        {
            "origin": string(_AIRPORT.format("origin", "JFK")),
            "destination": string(_AIRPORT.format("destination", "LAX")),
            "date": _DATE,
        },
    ),
    function_schema(
        "search_onestop_flight",
        "Search one-stop connections (two flights) between two airports, leaving on a date.",
        {
            "origin": string(_AIRPORT.format("origin", "JFK")),
            "destination": string(_AIRPORT.format("destination", "LAX")),
            "date": _DATE,
        },
    ),
    function_schema(
        "send_certificate",
        "Send a user a travel certificate, e.g. as compensation allowed by the policy.",
        {"user_id": _USER_ID, "amount": {"type": "number", "description": "The certificate's value."}},
    ),
    THINK,
    TRANSFER_TO_HUMAN_AGENTS,
    function_schema(
        "update_reservation_baggages",
        "Change the checked bags of a reservation; each added non-free bag costs $50.",
        {
            "reservation_id": _RESERVATION_ID,
            "total_baggages": {"type": "integer", "description": "The new total number of checked bags."},
            "nonfree_baggages": {"type": "integer", "description": "The new number of non-free checked bags."},
            "payment_id": _PAYMENT_ID,
        },
    ),
    function_schema(
        "update_reservation_flights",
        "Change the flights (and/or cabin) of a reservation; the price difference is paid or refunded.",
        {
            "reservation_id": _RESERVATION_ID,
            "cabin": _CABIN,
            "flights": _object_list(
                "Every flight segment of the ENTIRE new itinerary, including segments that do not change.", _SEGMENTS
            ),
            "payment_id": _PAYMENT_ID,
        },
    ),
    function_schema(
        "update_reservation_passengers",
        "Replace the passenger details of a reservation; the number of passengers cannot change.",
        {
            "reservation_id": _RESERVATION_ID,
            "passengers": _object_list("Every passenger of the reservation.", _PASSENGER),
        },
    ),
]
