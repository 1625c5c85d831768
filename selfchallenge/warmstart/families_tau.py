"""Warm-start task families for retail and airline: a user found with the discovery tools wants something done
to one of their orders or reservations (look it up, cancel it, return an item, change its address, add a bag).

The instruction is the simulated user's persona and goal, with every fact the user needs to answer the agent;
the verifier checks the database (and, for look-ups, what the agent said, which is the `answer`); the failure
cases are the near misses (the other cancel reason, every item instead of one, a free bag instead of a paid one,
saying it without doing it). The executor's dialogue follows the policy: find the user or record, state the
action and get a yes before any write, then report.
"""

from __future__ import annotations

import random

from ..envs.airline.tools import AIRPORTS
from ..envs.retail.tools import CANCEL_REASONS
from .scripted import Script, World

STOP = "###STOP###"
REASON_PHRASES = {"no longer needed": "no longer need it", "ordered by mistake": "ordered it by mistake"}
STREETS = ("12 Oak Street", "480 Pine Avenue", "77 Lake Road", "9 Hill Lane", "315 Cedar Court")
CITIES = (("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Boston", "MA", "02108"), ("Seattle", "WA", "98101"))
ORDER_STATUSES = ("pending", "processed", "delivered", "cancelled")


def _retail_explore(status: str) -> list[str]:
    return [
        f'import json\norder = json.loads(random_order("{status}"))\nprint(order)\n'
        'print(get_user_details(order["user_id"]))'
    ]


def _order_and_user(world: World, status: str) -> tuple[dict, dict, str] | None:
    """A discovered order of `status` ("" = any), its full record and its user (as the exploration shows them)."""
    try:
        found = world.discover("random_order", status)
    except Exception:  # noqa: BLE001 - no such order in this world
        return None
    order = world.data["orders"][found["order_id"]]
    user = world.data["users"][order["user_id"]]
    return order, user, f"{user['name']['first_name']} {user['name']['last_name']}"


def _find(email: str, order_id: str) -> str:
    return f"print(find_user_id_by_email({email!r}))\nprint(get_order_details({order_id!r}))"


def _order_verifier(order_id: str, condition: str, said: bool = False) -> str:
    lines = ["def evaluate(state, answer):", f"    order = state['orders'][{order_id!r}]"]
    if said:
        lines.append("    said = str(answer).lower()")
    return "\n".join([*lines, f"    return {condition}"])


def _write_dialogue(opening: str, find: str, confirm: str, write: str, done: str) -> list[tuple[str, str]]:
    return [
        ("user", opening),
        ("code", find),
        ("say", confirm),
        ("user", "Yes, please."),
        ("code", f"print({write})"),
        ("say", done),
        ("user", STOP),
    ]


def retail_order_status(rng: random.Random, world: World) -> Script | None:
    found = _order_and_user(world, "")
    if found is None:
        return None
    order, user, name = found
    oid, status, email = order["order_id"], order["status"], user["email"]
    wrong = rng.choice([s for s in ORDER_STATUSES if s not in status and status not in s])
    others = [s for s in ORDER_STATUSES if s not in status and status not in s]
    said = "Your order {} is {}."
    # the status must be said, and no other one: an agent naming every status must not pass
    told = f"{status!r} in said and not any(other in said for other in {others!r})"
    return Script(
        family="retail_order_status",
        instruction=f"You are {name}, your email is {email}. You want to know the status of your order {oid}. "
        "You do not want to change anything.",
        verifier=_order_verifier(oid, f"order['status'] == {status!r} and {told}", said=True),
        wrong_verifier=_order_verifier(oid, f"{wrong!r} in said", said=True),
        solution=f"import json\nstatus = json.loads(get_order_details({oid!r}))['status']\n"
        f"answer = 'Your order {oid} is ' + status + '.'",
        failures=[
            f"answer = {said.format(oid, wrong)!r}",
            f"answer = {said.format(oid, ' or '.join(ORDER_STATUSES))!r}",
            "answer = 'I cannot find your order.'",
        ],
        dialogue=[
            ("user", f"Hi! What is the status of my order {oid}? My email is {email}."),
            ("code", _find(email, oid)),
            ("say", said.format(oid, status)),
            ("user", STOP),
        ],
        explore=_retail_explore(""),
    )


def retail_cancel(rng: random.Random, world: World) -> Script | None:
    found = _order_and_user(world, "pending")
    if found is None:
        return None
    order, user, name = found
    oid, email = order["order_id"], user["email"]
    reason = rng.choice(CANCEL_REASONS)
    other = next(r for r in CANCEL_REASONS if r != reason)
    cancel = "cancel_pending_order(order_id={!r}, reason={!r})"
    done = f"Your order {oid} is cancelled."
    return Script(
        family="retail_cancel",
        instruction=f"You are {name}, your email is {email}. You want to cancel your pending order {oid} because "
        f"you {REASON_PHRASES[reason]}.",
        verifier=_order_verifier(oid, f"order['status'] == 'cancelled' and order.get('cancel_reason') == {reason!r}"),
        wrong_verifier=_order_verifier(oid, f"order.get('cancel_reason') == {other!r}"),
        solution=f"{cancel.format(oid, reason)}\nanswer = {done!r}",
        failures=[f"{cancel.format(oid, other)}\nanswer = {done!r}", f"answer = {done!r}"],
        dialogue=_write_dialogue(
            f"Hi, I want to cancel my order {oid} because I {REASON_PHRASES[reason]}. My email is {email}.",
            _find(email, oid),
            f"I can cancel order {oid} with the reason '{reason}'. Do you confirm (yes/no)?",
            cancel.format(oid, reason),
            done,
        ),
        explore=_retail_explore("pending"),
    )


def retail_return(rng: random.Random, world: World) -> Script | None:
    found = _order_and_user(world, "delivered")
    if found is None:
        return None
    order, user, name = found
    oid, email = order["order_id"], user["email"]
    item = rng.choice(order["items"])
    method = order["payment_history"][0]["payment_method_id"]
    item_ids = sorted(i["item_id"] for i in order["items"])
    write = "return_delivered_order_items(order_id={!r}, item_ids={!r}, payment_method_id={!r})"
    done = f"The return of the {item['name']} from order {oid} is requested."
    failures = [f"answer = {done!r}"]
    if len(item_ids) > 1:
        failures.append(f"{write.format(oid, item_ids, method)}\nanswer = {done!r}")
    others = [m for m in user["payment_methods"] if m != method and "gift_card" in m]
    if others:
        failures.append(f"{write.format(oid, [item['item_id']], others[0])}\nanswer = {done!r}")
    if len(failures) < 2:
        return None
    returned = f"order.get('return_items') == {[item['item_id']]!r}"
    return Script(
        family="retail_return",
        instruction=f"You are {name}, your email is {email}. You received your order {oid} and want to return the "
        f"{item['name']} (item {item['item_id']}), refunded to the original payment method {method}.",
        verifier=_order_verifier(
            oid,
            f"order['status'] == 'return requested' and {returned} and "
            f"order.get('return_payment_method_id') == {method!r}",
        ),  # fmt: skip
        wrong_verifier=_order_verifier(oid, f"order.get('return_items') == {item_ids + ['x']!r}"),
        solution=f"{write.format(oid, [item['item_id']], method)}\nanswer = {done!r}",
        failures=failures,
        dialogue=_write_dialogue(
            f"Hi, I want to return the {item['name']} from my order {oid}, refunded to {method}. My email is {email}.",
            _find(email, oid),
            f"I can return the {item['name']} (item {item['item_id']}) of order {oid} with a refund to {method}. "
            "Do you confirm (yes/no)?",
            write.format(oid, [item["item_id"]], method),
            done,
        ),
        explore=_retail_explore("delivered"),
    )


def retail_address(rng: random.Random, world: World) -> Script | None:
    found = _order_and_user(world, "pending")
    if found is None:
        return None
    order, user, name = found
    oid, email = order["order_id"], user["email"]
    street = rng.choice(STREETS)
    city, state, zip_code = rng.choice(CITIES)
    address = {"address1": street, "address2": "", "city": city, "state": state, "country": "USA", "zip": zip_code}
    if order["address"] == address:
        return None
    args = ", ".join(f"{key}={value!r}" for key, value in address.items())
    wrong_zip = {**address, "zip": "00000"}
    done = f"The shipping address of order {oid} is now {street}, {city}, {state} {zip_code}."
    return Script(
        family="retail_address",
        instruction=f"You are {name}, your email is {email}. You want your pending order {oid} shipped to {street}, "
        f"{city}, {state} {zip_code}, USA (no second address line).",
        verifier=_order_verifier(oid, f"order['address'] == {address!r}"),
        wrong_verifier=_order_verifier(oid, f"order['address'] == {wrong_zip!r}"),
        solution=f"modify_pending_order_address(order_id={oid!r}, {args})\nanswer = {done!r}",
        failures=[
            f"modify_user_address(user_id={order['user_id']!r}, {args})\nanswer = {done!r}",
            f"answer = {done!r}",
        ],
        dialogue=_write_dialogue(
            f"Hi, please ship my order {oid} to {street}, {city}, {state} {zip_code}, USA. My email is {email}.",
            _find(email, oid),
            f"I can change the shipping address of order {oid} to {street}, {city}, {state} {zip_code}, USA. "
            "Do you confirm (yes/no)?",
            f"modify_pending_order_address(order_id={oid!r}, {args})",
            done,
        ),
        explore=_retail_explore("pending"),
    )


# --- airline ------------------------------------------------------------------------------------------------
AIRLINE_EXPLORE = ["import json\nuser = json.loads(random_user())\nprint(user)"]


def _user_and_reservation(rng: random.Random, world: World) -> tuple[str, dict, str, dict] | None:
    found = world.discover("random_user")
    active = [r for r in found["reservations"] if r.get("status") != "cancelled"]
    if not active:
        return None
    reservation = world.data["reservations"][rng.choice(active)["reservation_id"]]
    user = world.data["users"][found["user_id"]]
    return found["user_id"], user, f"{user['name']['first_name']} {user['name']['last_name']}", reservation


def _reservation_verifier(reservation_id: str, condition: str) -> str:
    return (
        "def evaluate(state, answer):\n"
        f"    reservation = state['reservations'][{reservation_id!r}]\n"
        f"    return {condition}"
    )


def airline_destination(rng: random.Random, world: World) -> Script | None:
    found = _user_and_reservation(rng, world)
    if found is None:
        return None
    uid, _user, name, reservation = found
    rid, destination = reservation["reservation_id"], reservation["destination"]
    wrong = reservation["origin"] if reservation["origin"] != destination else "XXX"
    said = "Your reservation {} goes to {}."
    active = "reservation.get('status') != 'cancelled'"
    # the destination must be named, and no other airport: an agent listing every airport must not pass
    verifier = (
        "def evaluate(state, answer):\n"
        "    import re\n"
        f"    reservation = state['reservations'][{rid!r}]\n"
        f"    named = set(re.findall(r'\\b[A-Z]{{3}}\\b', str(answer))) & set({sorted(AIRPORTS)!r})\n"
        f"    return {active} and named == {{{destination!r}}}"
    )
    return Script(
        family="airline_destination",
        instruction=f"You are {name}, your user id is {uid}. You want to know the destination of your reservation "
        f"{rid}. You do not want to change anything.",
        verifier=verifier,
        wrong_verifier=_reservation_verifier(rid, f"{active} and {wrong!r} in str(answer)"),
        solution=f"import json\ndestination = json.loads(get_reservation_details({rid!r}))['destination']\n"
        f"answer = 'Your reservation {rid} goes to ' + destination + '.'",
        failures=[
            f"answer = {said.format(rid, wrong)!r}",
            f"answer = {said.format(rid, ', '.join(sorted(AIRPORTS)))!r}",
            f"cancel_reservation(reservation_id={rid!r})\nanswer = {said.format(rid, destination)!r}",
        ],
        dialogue=[
            ("user", f"Hi, where does my reservation {rid} go? My user id is {uid}."),
            ("code", f"print(get_reservation_details({rid!r}))"),
            ("say", said.format(rid, destination)),
            ("user", STOP),
        ],
        explore=list(AIRLINE_EXPLORE),
    )


def airline_cancel(rng: random.Random, world: World) -> Script | None:
    found = _user_and_reservation(rng, world)
    if found is None:
        return None
    uid, _user, name, reservation = found
    rid = reservation["reservation_id"]
    done = f"Your reservation {rid} is cancelled."
    write = f"cancel_reservation(reservation_id={rid!r})"
    return Script(
        family="airline_cancel",
        instruction=f"You are {name}, your user id is {uid}. You want to cancel your reservation {rid}.",
        verifier=_reservation_verifier(rid, "reservation.get('status') == 'cancelled'"),
        wrong_verifier=_reservation_verifier(rid, "reservation.get('status') == 'changed'"),
        solution=f"{write}\nanswer = {done!r}",
        failures=[f"answer = {done!r}", f"get_reservation_details({rid!r})\nanswer = {done!r}"],
        dialogue=_write_dialogue(
            f"Hi, I want to cancel my reservation {rid}. My user id is {uid}.",
            f"print(get_reservation_details({rid!r}))",
            f"I can cancel reservation {rid}. Do you confirm (yes/no)?",
            write,
            done,
        ),
        explore=list(AIRLINE_EXPLORE),
    )


def airline_add_bag(rng: random.Random, world: World) -> Script | None:
    found = _user_and_reservation(rng, world)
    if found is None:
        return None
    uid, user, name, reservation = found
    cards = sorted(m for m, method in user["payment_methods"].items() if method["source"] == "credit_card")
    if not cards:
        return None
    rid, card = reservation["reservation_id"], rng.choice(cards)
    total, nonfree = reservation["total_baggages"], reservation["nonfree_baggages"]
    write = "update_reservation_baggages(reservation_id={!r}, total_baggages={}, nonfree_baggages={}, payment_id={!r})"
    done = f"One checked bag is added to reservation {rid}."
    bags = "reservation['total_baggages'] == {} and reservation['nonfree_baggages'] == {}"
    return Script(
        family="airline_add_bag",
        instruction=f"You are {name}, your user id is {uid}. You want to add one checked bag to your reservation "
        f"{rid} and pay for it with your credit card {card}.",
        verifier=_reservation_verifier(rid, bags.format(total + 1, nonfree + 1)),
        wrong_verifier=_reservation_verifier(rid, bags.format(total + 2, nonfree + 2)),
        solution=f"{write.format(rid, total + 1, nonfree + 1, card)}\nanswer = {done!r}",
        failures=[
            f"{write.format(rid, total + 2, nonfree + 2, card)}\nanswer = {done!r}",
            f"{write.format(rid, total + 1, nonfree, card)}\nanswer = {done!r}",
            f"answer = {done!r}",
        ],
        dialogue=_write_dialogue(
            f"Hi, I want to add one checked bag to my reservation {rid}, paid with {card}. My user id is {uid}.",
            f"print(get_reservation_details({rid!r}))",
            f"I can add one checked bag to reservation {rid} ({total + 1} bags in all, {nonfree + 1} paid), charged "
            f"to {card}. Do you confirm (yes/no)?",
            write.format(rid, total + 1, nonfree + 1, card),
            done,
        ),
        explore=list(AIRLINE_EXPLORE),
    )


RETAIL_FAMILIES = [retail_order_status, retail_cancel, retail_return, retail_address]
AIRLINE_FAMILIES = [airline_destination, airline_cancel, airline_add_bag]
