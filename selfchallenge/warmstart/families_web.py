"""Warm-start task families for web browsing: a fact on one page of the site (an item's price, a person's email
or department). The challenger finds the page with its discovery tools (`site_map`, `read_page`); the executor
clicks its way there and answers. The verifier checks the answer and that the page was opened, so answering
from memory fails (a failure case). A fact's page is its metadata's `page` (generated sites) or the page named
after it (the benchmark's site: "Mystical Wand" -> /products/wand/mystical_wand)."""

from __future__ import annotations

import posixpath
import random

from .scripted import Script, World


def _explore(page: str) -> list[str]:
    return ["print(site_map())", f"print(read_page({page!r}))"]


def _page_of(row: dict, pages: dict) -> str | None:
    if row.get("page") in pages:
        return row["page"]
    slug = row["name"].lower().replace(" ", "_")
    return next((name for name in sorted(pages) if name.rsplit("/", 1)[-1] == slug), None)


def _with_pages(rows: list[dict], pages: dict) -> list[dict]:
    return [{**row, "page": page} for row in rows if (page := _page_of(row, pages))]


def _clicks(page: str, pages: dict) -> str:
    """Click from the section page down to `page` (every existing level on the way), printing the last view."""
    parts = page.strip("/").split("/")
    levels = [level for level in ("/" + "/".join(parts[: i + 1]) for i in range(len(parts) - 1)) if level in pages]
    return "\n".join([*(f"click_url({level!r})" for level in levels), f"print(click_url({page!r}))"])


def _visited_and(page: str, check: str) -> str:
    return f"def evaluate(state, answer):\n    if {page!r} not in state['visited']:\n        return False\n    {check}"


def web_item_price(rng: random.Random, world: World) -> Script | None:
    pages = world.env.site["pages"]
    items = _with_pages(world.env.metadata["item_info"], pages)
    if len(items) < 2:
        return None
    item, other = rng.sample(items, 2)
    page, price = item["page"], item["price"]
    number = (
        "try:\n        value = float(str(answer).strip().lstrip('$'))\n    except ValueError:\n        return False\n"
        "    return abs(value - {}) < 0.01"
    )
    return Script(
        family="web_item_price",
        instruction=f"What is the current price of the {item['name']} on the web site? Answer with the number only.",
        verifier=_visited_and(page, number.format(price)),
        wrong_verifier=_visited_and(page, number.format(round(price + 1, 2))),
        solution=f"{_clicks(page, pages)}\nanswer = {str(price)!r}",
        failures=[
            f"answer = {str(price)!r}",  # right number, page never opened
            f"{_clicks(page, pages)}\nanswer = {str(other['price'])!r}",
            f"{_clicks(posixpath.dirname(page), pages)}\nanswer = {str(price)!r}",
        ],
        dialogue=[("code", _clicks(page, pages)), ("answer", str(price))],
        explore=_explore(page),
    )


def web_person_fact(rng: random.Random, world: World) -> Script | None:
    pages = world.env.site["pages"]
    people = _with_pages(world.env.metadata["person_info"], pages)
    if len(people) < 2:
        return None
    person, other = rng.sample(people, 2)
    field, what = rng.choice((("email", "email address"), ("department", "department")))
    page, value, wrong = person["page"], person[field], other[field]
    if wrong == value:
        wrong = value + "s"
    text = "return str(answer).strip().lower() == {!r}"
    return Script(
        family="web_person_fact",
        instruction=f"What is the {what} of {person['name']} according to the web site? Answer with the {what} only.",
        verifier=_visited_and(page, text.format(value.lower())),
        wrong_verifier=_visited_and(page, text.format(wrong.lower())),
        solution=f"{_clicks(page, pages)}\nanswer = {value!r}",
        failures=[
            f"answer = {value!r}",
            f"{_clicks(page, pages)}\nanswer = {wrong!r}",
            f"{_clicks(page, pages)}\nanswer = {person['name']!r}",
        ],
        dialogue=[("code", _clicks(page, pages)), ("answer", value)],
        explore=_explore(page),
    )


FAMILIES = [web_item_price, web_person_fact]  # a family's name is its function's
