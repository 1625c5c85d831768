"""Web sites for the `web_browsing` environment: the benchmark's site from a data folder, or one generated from a
seed with the same shape. Stdlib only.

A site is {"source", "company", "pages": {name: content}, "metadata": {"item_info": [...], "person_info": [...]}}.
- item_info rows: name, price (what the buyer pays now), original_price (None unless discounted);
- person_info rows: name, expertise ("A/B"), email, phone_number, department.
Generated rows also carry `category` / `page`. Sites are cached per source and must be treated as read-only.

Generated shape (as the benchmark's): "/" links to /about, /products, /blog, /contact and /team; /products lists
category pages, each listing item pages ("Item: ...", "Price: $12.34", some discounted); /team lists department
pages (always Engineering, Marketing, Sales and Customer Support), each listing person pages ("<name> of <dept>
Department", Expertise, Email, Phone). Every category has a "Legendary" item. Unlike the benchmark data, every
link of a generated site leads to an existing page.
"""

from __future__ import annotations

import json
import os
import random

_CACHE: dict[tuple, dict] = {}

COMPANIES = (
    ("MagicWand Co.", "magicwand.co"),
    ("Arcane Emporium", "arcane-emporium.com"),
    ("Starlight Curios", "starlightcurios.net"),
    ("Moonstone Supply", "moonstone.supply"),
    ("Wyrmfire Goods", "wyrmfire.shop"),
)
CATEGORIES = ("Wand", "Potion", "Spellbook", "Crystal Ball", "Amulet", "Cloak", "Broom", "Rune Stone")
ADJECTIVES = ("Mystical", "Enchanted", "Ancient", "Magical", "Rare", "Celestial", "Shadow", "Gilded")
DEPARTMENTS = ("Engineering", "Marketing", "Sales", "Customer Support")
EXTRA_DEPARTMENTS = ("Research", "Logistics")
FIRST_NAMES = (
    "Alice", "Brian", "Carmen", "Daniel", "Elena", "Farid", "Grace", "Hector", "Ingrid", "Jamal", "Keiko", "Liam",
    "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Samuel", "Tara", "Umar", "Vera", "Wesley", "Ximena",
    "Yusuf", "Zoe", "Aaron", "Bianca", "Caleb", "Delia",
)  # fmt: skip
LAST_NAMES = (
    "Anderson", "Bishop", "Castillo", "Dawson", "Ellison", "Fischer", "Garcia", "Hartley", "Iverson", "Jensen",
    "Kowalski", "Lopez", "Morrison", "Nakamura", "Okafor", "Patel", "Quinlan", "Reyes", "Schmidt", "Thornton",
    "Underwood", "Vasquez", "Whitaker", "Yamamoto", "Zimmerman", "Brennan", "Carver", "Dunmore",
)  # fmt: skip
MAIL_TLDS = ("com", "net", "org", "info", "biz")
ITEM_BLURBS = (
    "High-quality magical item.",
    "Hand-crafted by our senior artisans.",
    "A customer favourite for over a decade.",
    "Tested under the full moon for reliability.",
)


def load_site(data_dir: str) -> dict:
    """The benchmark's site: `<data_dir>/web_pages.jsonl` ({"name", "content"} per line) and metadata.json."""
    folder = os.path.abspath(data_dir)
    key = ("data", folder)
    if key not in _CACHE:
        pages_path = os.path.join(folder, "web_pages.jsonl")
        metadata_path = os.path.join(folder, "metadata.json")
        for path in (pages_path, metadata_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"env_config.data_dir={data_dir!r} has no {os.path.basename(path)}; point data_dir at a folder "
                    "laid out like shared/data/m3tooleval, or drop data_dir to use a generated site (env_config.seed)"
                )
        pages: dict[str, str] = {}
        with open(pages_path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    pages[row["name"]] = row["content"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{pages_path}:{number}: expected {{'name': ..., 'content': ...}} ({exc})"
                    ) from exc
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
        _CACHE[key] = {"source": f"data:{folder}", "company": "MagicWand Co.", "pages": pages, "metadata": metadata}
    return _CACHE[key]


def generate_site(seed: int = 0) -> dict:
    key = ("seed", seed)
    if key not in _CACHE:
        _CACHE[key] = _generate(random.Random(f"web-site-{seed}"), seed)
    return _CACHE[key]


def site_for(env_config: dict) -> dict:
    """The site an env_config selects: `data_dir` wins over `seed` (default 0)."""
    data_dir = env_config.get("data_dir")
    if data_dir:
        return load_site(str(data_dir))
    return generate_site(int(env_config.get("seed", 0)))


def _slug(text: str) -> str:
    return text.lower().replace(" ", "_")


def _listing(title: str, links: list[str]) -> str:
    # Listing pages end with a newline, as the benchmark's do (their last line is empty).
    return f"{title}:\n" + "".join(f"- {link} [Clickable '{link}']\n" for link in links)


def _phone(rng: random.Random) -> str:
    def digits(count: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(count))

    area, mid, last = str(rng.randint(201, 989)), digits(3), digits(4)
    return rng.choice(
        (
            f"{area}-{mid}-{last}",
            f"({area}){mid}-{last}",
            f"({area}){mid}-{last}x{digits(3)}",
            f"+1-{area}-{mid}-{last}",
            f"001-{area}-{mid}-{last}x{digits(5)}",
            f"{area}.{mid}.{last}",
            f"{area}{mid}{last}",
        )
    )


def _generate(rng: random.Random, seed: int) -> dict:
    company, web_domain = rng.choice(COMPANIES)
    categories = rng.sample(CATEGORIES, rng.randint(3, 5))
    departments = list(DEPARTMENTS) + rng.sample(EXTRA_DEPARTMENTS, rng.randint(0, 1))
    pages: dict[str, str] = {}
    items: list[dict] = []
    people: list[dict] = []

    # Products: every category has a Legendary item among 3-6 variants.
    category_pages = []
    for category in categories:
        adjectives = ["Legendary", *rng.sample(ADJECTIVES, rng.randint(2, 5))]
        rng.shuffle(adjectives)
        item_pages = []
        for adjective in adjectives:
            name = f"{adjective} {category}"
            page = f"/products/{_slug(category)}/{_slug(name)}"
            price = round(rng.uniform(49.99, 199.99), 2)
            original_price = None
            price_text = f"${price:.2f}"
            if rng.random() < 0.15:
                off_percent = rng.randint(10, 50)
                original_price = price
                price = round(original_price * (1 - off_percent / 100), 2)
                price_text = f"${original_price:.2f} ({off_percent}% off!) -> Now at Price: ${price:.2f}"
            pages[page] = f"Item: {name}\nDescription: {rng.choice(ITEM_BLURBS)}\nPrice: {price_text}"
            item_pages.append(page)
            items.append(
                {"name": name, "price": price, "original_price": original_price, "category": category, "page": page}
            )
        category_page = f"/products/{_slug(category)}"
        pages[category_page] = _listing(category, item_pages)
        category_pages.append(category_page)
    pages["/products"] = "Our Products:\n" + "".join(
        f"- {category} [Clickable '{page}']\n" for category, page in zip(categories, category_pages, strict=True)
    )

    # People: 3-6 per department, unique names (one more for the CEO).
    all_names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    names = rng.sample(all_names, 6 * len(departments) + 1)
    department_pages = []
    for department in departments:
        member_pages = []
        for _ in range(rng.randint(3, 6)):
            name = names.pop()
            page = f"/team/{_slug(department)}/{_slug(name)}"
            mail_host = "-".join(rng.sample(LAST_NAMES, rng.randint(1, 2))).lower()
            person = {
                "name": name,
                "expertise": "/".join(rng.sample(categories, 2)),
                "email": f"{name.lower().replace(' ', '.')}@{mail_host}.{rng.choice(MAIL_TLDS)}",
                "phone_number": _phone(rng),
                "department": department,
                "page": page,
            }
            pages[page] = (
                f"{name} of {department} Department\nExpertise: {person['expertise']}\n"
                f"Email: {person['email']}\nPhone: {person['phone_number']}"
            )
            member_pages.append(page)
            people.append(person)
        department_page = f"/team/{_slug(department)}"
        pages[department_page] = _listing(f"{department} Team", member_pages)
        department_pages.append(department_page)
    pages["/team"] = "Our Teams:\n" + "".join(
        f"- {department} Team [Clickable '{page}']\n"
        for department, page in zip(departments, department_pages, strict=True)
    )

    ceo = names.pop()
    pages["/"] = (
        f"Welcome to {company}!\n"
        f"Your one-stop shop for {', '.join(c.lower() + 's' for c in categories[:-1])} and {categories[-1].lower()}s.\n"
        "- About Us [Clickable '/about']\n"
        "- Our Products [Clickable '/products']\n"
        "- Blog [Clickable '/blog']\n"
        "- Contact Us [Clickable '/contact']\n"
        "- Meet Our Team [Clickable '/team']\n"
        "Browse, compare and enjoy!"
    )
    pages["/about"] = (
        f"About {company}\n"
        f"Founded {rng.randint(5, 150)} years ago, we supply enchanted goods to customers across the realm.\n"
        "Meet Our Team [Clickable '/team']\n"
        "Explore Our Products [Clickable '/products']\n"
        f"- CEO: {ceo} [Clickable '/about/team/ceo']\n"
        "We stand behind every item we sell."
    )
    pages["/about/team/ceo"] = (
        f"{ceo} - CEO\n{ceo} has led {company} through {rng.randint(2, 12)} record years.\n"
        f"Email: {_slug(ceo).replace('_', '.')}@{web_domain}"
    )
    pages["/contact"] = (
        f"Contact Us at {company}\nQuestions about an order or a product? Write or call us.\n"
        f"Email: contact@{web_domain}\nPhone: {_phone(rng)}"
    )
    featured = rng.choice(categories)
    pages["/blog"] = (
        "Our Blog\nNews, tips and stories from our workshop.\n"
        f"- Caring for your {featured.lower()} [Clickable '/blog/care']\n"
        "- Upcoming events [Clickable '/blog/events']"
    )
    pages["/blog/care"] = (
        f"Caring for your {featured.lower()}\nKeep it dry, keep it dusted, and have it checked once a year."
    )
    pages["/blog/events"] = f"Upcoming events\nOpen workshop day in month {rng.randint(1, 12)}. Everyone is welcome."
    return {
        "source": f"seed:{seed}",
        "company": company,
        "pages": pages,
        "metadata": {"item_info": items, "person_info": people},
    }
