"""A seeded generator of retail worlds with tau-bench's schema ({"orders","products","users"}).

Same seed and sizes -> the same world. Orders hold real variants at their catalog prices; payment histories,
fulfillments, refunds and the fields the tools add (cancel_reason, exchange_*, return_*) are consistent with the
order's status, so every tool works on a generated world as on the benchmark's.
"""

from __future__ import annotations

import itertools
import random

from ..people import CARD_BRANDS, UniqueIds, make_address, make_email, pick_name

DEFAULT_SIZES = {"num_users": 40, "num_orders": 80, "num_products": 20}

# One product type per entry: name | price range | option: values | ... (a line starting with "|" continues it)
_CATALOG_TEXT = """
T-Shirt | 18-45 | color: black, white, blue, red | size: S, M, L, XL | material: cotton, polyester
Laptop | 700-2900 | screen size: 13-inch, 15-inch | processor: i5, i7, i9 | ram: 8GB, 16GB, 32GB
    | storage: 256GB SSD, 512GB SSD, 1TB SSD
Running Shoes | 60-160 | size: 7, 8, 9, 10, 11 | color: black, white, red | sole: rubber, EVA
Smartphone | 450-1200 | color: black, silver, gold | storage: 64GB, 128GB, 256GB | screen size: 5.8-inch, 6.5-inch
Backpack | 35-220 | color: black, grey, navy, green | size: small, medium, large | material: nylon, leather, canvas
Coffee Maker | 25-300 | color: black, stainless steel, white | capacity: 1 cup, 4 cups, 8 cups, 12 cups
    | type: drip, single serve, french press
Water Bottle | 12-55 | capacity: 500ml, 750ml, 1000ml | material: glass, stainless steel, plastic
    | color: blue, black, red, green
Desk Lamp | 20-140 | color: white, black, silver | brightness: low, medium, high
    | power source: USB, AC adapter, battery
Notebook | 6-30 | size: A4, A5 | cover type: hard cover, soft cover
Sunglasses | 40-300 | frame color: black, brown, silver | lens color: green, brown, grey
    | lens type: polarized, non-polarized
Wristwatch | 80-2000 | strap material: leather, metal, silicone | dial color: black, white, blue
Electric Toothbrush | 30-220 | color: white, black, blue | speed settings: low, medium, high
    | battery type: rechargeable, AA batteries
Yoga Mat | 20-120 | thickness: 4mm, 6mm, 8mm | material: PVC, natural rubber, TPE | color: pink, blue, green, purple
Bluetooth Speaker | 40-320 | color: black, blue, red, green | battery life: 10 hours, 20 hours
    | water resistance: yes, no
Gaming Mouse | 25-170 | color: black, white, RGB | sensor type: optical, laser | connectivity: wired, wireless
Action Camera | 120-550 | resolution: 1080p, 4K, 5K | waterproof: yes, no | color: black, silver
Garden Hose | 20-110 | length: 25ft, 50ft, 100ft | material: rubber, vinyl, latex | color: green, black, blue
Hiking Boots | 80-280 | size: 8, 9, 10, 11, 12 | material: leather, synthetic | waterproof: yes, no
Tablet | 180-1100 | screen size: 8-inch, 10-inch, 12-inch | storage: 32GB, 64GB, 128GB | color: black, silver, gold
E-Reader | 90-320 | screen size: 6-inch, 7-inch, 8-inch | connectivity: Wi-Fi, Wi-Fi + Cellular | storage: 8GB, 32GB
Portable Charger | 20-95 | capacity: 5000mAh, 10000mAh, 20000mAh | output: USB-A, USB-C, Wireless
    | color: black, white, blue
Electric Kettle | 20-260 | capacity: 1L, 1.5L, 2L | material: plastic, stainless steel, glass
    | color: white, black, silver
Mechanical Keyboard | 60-300 | switch type: linear, tactile, clicky | backlight: none, white, RGB
    | size: full size, 80%, 60%
Wireless Earbuds | 40-280 | color: black, white, blue | battery life: 4 hours, 6 hours, 8 hours
    | water resistance: IPX4, IPX7, not resistant
Smart Thermostat | 120-280 | compatibility: Apple HomeKit, Google Assistant, Amazon Alexa
    | color: white, black, stainless steel
Fleece Jacket | 40-150 | size: S, M, L, XL | color: black, navy, red | zipper: full, half
Wall Clock | 20-320 | diameter: 10 inches, 12 inches, 14 inches | color: black, white, wood | type: analog, digital
Dumbbell Set | 100-560 | weight range: 5-25 lbs, 30-50 lbs, 55-75 lbs | material: iron, rubber, urethane
    | set type: fixed, adjustable
Pet Bed | 25-200 | size: small, medium, large | material: memory foam, polyester, fleece | color: grey, brown, beige
Espresso Machine | 120-3100 | pressure: 9 bar, 15 bar, 19 bar | capacity: 1L, 1.5L, 2L
    | type: manual, automatic, capsule
Cycling Helmet | 40-230 | size: S, M, L | color: black, white, red, blue | ventilation: low, medium, high
LED Light Bulb | 8-60 | brightness: 60W equivalent, 75W equivalent, 100W equivalent
    | color temperature: 2700K, 5000K | connectivity: none, Wi-Fi, Bluetooth
Digital Camera | 300-3200 | resolution: 20MP, 24MP, 30MP | zoom: 3x, 5x, 10x | storage: SD card, CF card
Bookshelf | 60-560 | material: wood, metal, glass | color: white, brown, black | height: 3 ft, 4 ft, 5 ft, 6 ft
Bicycle | 300-2200 | frame size: small, medium, large | color: black, red, blue, green | type: road, mountain, city
Office Chair | 120-650 | material: mesh, fabric, leather | color: black, grey, blue | armrest: fixed, adjustable
Luggage Set | 110-650 | piece count: 2-piece, 3-piece, 4-piece | color: black, silver, blue, red
    | material: hardshell, softshell
Air Purifier | 70-580 | room size: small, medium, large | filter type: HEPA, carbon, ionic
    | features: quiet operation, night mode, smart sensors
Jigsaw Puzzle | 15-90 | pieces: 500, 1000, 1500, 2000 | theme: animals, art, landscape, fantasy
    | difficulty level: beginner, intermediate, expert
Headphones | 40-480 | type: on-ear, over-ear, in-ear | connectivity: wired, wireless
    | color: black, white, red, blue
Vacuum Cleaner | 90-800 | type: upright, canister, robotic | bagged/bagless: bagged, bagless
    | features: pet hair removal, cordless, HEPA filter
"""


def _parse_catalog(text: str) -> dict[str, tuple[dict[str, tuple[str, ...]], tuple[float, float]]]:
    """name -> (option name -> values, (lowest price, highest price))."""
    catalog = {}
    entries = text.strip().replace("\n    |", " |").splitlines()
    for entry in entries:
        name, prices, *options = (part.strip() for part in entry.split("|"))
        low, high = (float(bound) for bound in prices.split("-"))
        option_values = {}
        for option in options:
            option_name, values = option.split(":", 1)
            option_values[option_name.strip()] = tuple(value.strip() for value in values.split(","))
        catalog[name] = (option_values, (low, high))
    return catalog


CATALOG = _parse_catalog(_CATALOG_TEXT)

# Order statuses: the four in the benchmark data first, then the three the tools produce.
DATA_STATUSES = ("pending", "processed", "delivered", "cancelled")
TOOL_STATUSES = ("pending (item modified)", "return requested", "exchange requested")
STATUS_WEIGHTS = (0.36, 0.1, 0.32, 0.1, 0.04, 0.04, 0.04)
PAYMENT_SOURCES = ("credit_card", "gift_card", "paypal")


def _products(rng: random.Random, ids: UniqueIds, count: int) -> dict:
    products = {}
    for name in sorted(rng.sample(sorted(CATALOG), count)):
        option_values, (low, high) = CATALOG[name]
        option_names = list(option_values)
        combinations = list(itertools.product(*(option_values[option] for option in option_names)))
        chosen = rng.sample(combinations, min(len(combinations), rng.randint(4, 16)))
        product_id = ids.digits(10)
        variants = {}
        for index, values in enumerate(chosen):
            item_id = ids.digits(10)
            variants[item_id] = {
                "item_id": item_id,
                "options": dict(zip(option_names, values, strict=True)),
                # The first two variants are always in stock so every product can be exchanged for something.
                "available": index < 2 or rng.random() < 0.6,
                "price": round(rng.uniform(low, high), 2),
            }
        products[product_id] = {"name": name, "product_id": product_id, "variants": variants}
    return products


def _payment_method(rng: random.Random, ids: UniqueIds, source: str) -> dict:
    method_id = ids.digits(7, prefix=f"{source}_")
    if source == "credit_card":
        return {
            "source": source,
            "brand": rng.choice(CARD_BRANDS),
            "last_four": f"{rng.randint(0, 9999):04d}",
            "id": method_id,
        }
    if source == "gift_card":
        balance = rng.randint(0, 150) if rng.random() < 0.7 else round(rng.uniform(0, 150), 2)
        return {"source": source, "balance": balance, "id": method_id}
    return {"source": source, "id": method_id}


def _users(rng: random.Random, ids: UniqueIds, count: int) -> dict:
    users = {}
    for index in range(count):
        name = pick_name(rng)
        user_id = ids.user_id(name)
        # Every source occurs: user i's first method cycles through the three, extra ones are random.
        sources = [PAYMENT_SOURCES[index % 3]] + rng.sample(PAYMENT_SOURCES, rng.choice((0, 0, 1, 1, 2)))
        methods = {}
        for source in sources:
            method = _payment_method(rng, ids, source)
            methods[method["id"]] = method
        users[user_id] = {
            "name": name,
            "address": make_address(rng),
            "email": make_email(rng, name),
            "payment_methods": methods,
            "orders": [],
        }
    return users


def _order_items(rng: random.Random, products: dict) -> list[dict]:
    items = []
    for _ in range(rng.randint(1, 5)):
        product = products[rng.choice(sorted(products))]
        variant = product["variants"][rng.choice(sorted(product["variants"]))]
        item = {
            "name": product["name"],
            "product_id": product["product_id"],
            "item_id": variant["item_id"],
            "price": variant["price"],
            "options": dict(variant["options"]),
        }
        items.append(item)
    return items


def _fulfillments(rng: random.Random, ids: UniqueIds, items: list[dict]) -> list[dict]:
    item_ids = [item["item_id"] for item in items]
    if len(item_ids) > 2 and rng.random() < 0.3:  # shipped in two parcels
        cut = rng.randint(1, len(item_ids) - 1)
        parts = [item_ids[:cut], item_ids[cut:]]
    else:
        parts = [item_ids]
    return [{"tracking_id": [ids.digits(12)], "item_ids": part} for part in parts]


def _swap_target(rng: random.Random, products: dict, item: dict) -> dict | None:
    """Another available variant of the item's product, if any."""
    variants = products[item["product_id"]]["variants"]
    choices = [v for key, v in sorted(variants.items()) if v["available"] and key != item["item_id"]]
    return rng.choice(choices) if choices else None


def _order(rng: random.Random, ids: UniqueIds, products: dict, user_id: str, user: dict, status: str) -> dict:
    items = _order_items(rng, products)
    address = dict(user["address"]) if rng.random() < 0.8 else make_address(rng)
    method_id = rng.choice(sorted(user["payment_methods"]))
    total = round(sum(item["price"] for item in items), 2)
    order = {
        "order_id": ids.digits(7, prefix="#W"),
        "user_id": user_id,
        "address": address,
        "items": items,
        "fulfillments": [] if status.startswith("pending") else _fulfillments(rng, ids, items),
        "status": status,
        "payment_history": [{"transaction_type": "payment", "amount": total, "payment_method_id": method_id}],
    }
    history = order["payment_history"]
    if status == "cancelled":
        order["cancel_reason"] = rng.choice(("no longer needed", "ordered by mistake"))
        history.append({"transaction_type": "refund", "amount": total, "payment_method_id": method_id})
    elif status == "pending (item modified)":
        item = rng.choice(items)
        target = _swap_target(rng, products, item)
        if target is not None:
            difference = round(target["price"] - item["price"], 2)
            kind = "payment" if difference > 0 else "refund"
            history.append({"transaction_type": kind, "amount": abs(difference), "payment_method_id": method_id})
            item.update(item_id=target["item_id"], price=target["price"], options=dict(target["options"]))
    elif status == "return requested":
        returned = rng.sample([item["item_id"] for item in items], rng.randint(1, len(items)))
        gift_cards = sorted(k for k, m in user["payment_methods"].items() if m["source"] == "gift_card")
        order["return_items"] = sorted(returned)
        order["return_payment_method_id"] = rng.choice([method_id] + gift_cards)
    elif status == "exchange requested":
        pairs = [(item, _swap_target(rng, products, item)) for item in items]
        pairs = [(item, target) for item, target in pairs if target is not None][: rng.randint(1, 2)]
        if not pairs:
            order["status"] = "delivered"
        else:
            order["exchange_items"] = sorted(item["item_id"] for item, _ in pairs)
            order["exchange_new_items"] = sorted(target["item_id"] for _, target in pairs)
            order["exchange_payment_method_id"] = method_id
            order["exchange_price_difference"] = round(sum(t["price"] - i["price"] for i, t in pairs), 2)
    return order


def generate_world(seed: int = 0, num_users: int = 40, num_orders: int = 80, num_products: int = 20) -> dict:
    """A retail database {"orders","products","users"}; deterministic in (seed, sizes)."""
    if not 1 <= num_products <= len(CATALOG):
        raise ValueError(f"env_config.num_products={num_products} must be between 1 and {len(CATALOG)}")
    rng = random.Random(f"retail-world:{seed}")
    ids = UniqueIds(rng)
    products = _products(rng, ids, num_products)
    users = _users(rng, ids, num_users)
    user_ids = list(users)
    orders = {}
    statuses = DATA_STATUSES + TOOL_STATUSES
    for index in range(num_orders):
        # The first orders take every status once, so even small worlds show them all.
        status = statuses[index] if index < len(statuses) else rng.choices(statuses, STATUS_WEIGHTS)[0]
        user_id = rng.choice(user_ids)
        order = _order(rng, ids, products, user_id, users[user_id], status)
        orders[order["order_id"]] = order
        users[user_id]["orders"].append(order["order_id"])
    return {"orders": orders, "products": products, "users": users}
