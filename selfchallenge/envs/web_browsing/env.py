"""The `web_browsing` environment: M3ToolEval's text browser over a small company web site. Stdlib only.

env_config:
- `data_dir`: a folder laid out like shared/data/m3tooleval (web_pages.jsonl + metadata.json): the benchmark site;
- `seed` (default 0): without data_dir, a site generated from this seed (see site.py).
Every environment starts a fresh browser on "/" (history empty, scrolled to the top).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import Environment
from ..calculation.tools import CALCULATOR_DESCRIPTION, calculator
from ..toolkit import MAX_LOGGED_CALLS, CallLog, ToolDoc, openai_schema
from .browser import LINES_PER_VIEW, Browser
from .discovery import discovery_specs, discovery_tools
from .site import site_for

CONFIG_KEYS = ("data_dir", "seed")
START_PAGE = "/"

TOOL_DOCS = [
    ToolDoc(
        "click_url",
        "Clicks on a URL. A clickable URL looks like [Clickable '<url_argument>'] in the webpage.\n"
        "Arguments: url (str).\n"
        "Returns the rendered content of the webpage after clicking the URL showing on the current rendered page.\n",
        "click_url(url: str) -> str",
    ),
    ToolDoc(
        "go_to_previous_page",
        "Goes back to the previous page. It has no arguments.\n"
        "After going back to the previous page, return the rendered content of the webpage.",
        "go_to_previous_page() -> str",
    ),
    ToolDoc(
        "scroll_down",
        "Scrolls down the view. It has no arguments.\nReturns the rendered content of the webpage after scrolling down.",
        "scroll_down() -> str",
    ),
    ToolDoc(
        "scroll_up",
        "Scrolls up the view. It has no arguments.\nReturns the rendered content of the webpage after scrolling up.",
        "scroll_up() -> str",
    ),
    ToolDoc(
        "view",
        "Return the current view in string format of the rendered webpage. It has no arguments.\n"
        "Returns the rendered content of the webpage.\n"
        "You should call this when you want to see the rendered content of the current webpage.",
        "view() -> str",
    ),
    ToolDoc("calculator", CALCULATOR_DESCRIPTION, "calculator(expression: str) -> float"),
]


class WebBrowsingEnv(Environment):
    name = "web_browsing"
    config_keys = CONFIG_KEYS
    state_doc = (
        "a dict: `site`, `current_page`, `scroll_position`, `history`, `visited` (pages opened), `tool_calls`, "
        "`num_tool_calls`"
    )
    example_task = {
        "instruction": "What is the price of the Wand in the shop? Answer with the number only.",
        "verifier": (
            "def evaluate(state, answer):\n    return '/products/wand' in state['visited'] and "
            "str(answer).strip().lstrip('$') == '120'"
        ),
        "solution": "click_url('/products')\nclick_url('/products/wand')\nanswer = '120'",
        "failure_cases": ["answer = '120'", "click_url('/products')\nclick_url('/products/wand')\nanswer = 'Wand'"],
    }

    def __init__(self, env_config: dict | None = None):
        super().__init__(env_config)
        seed = self.env_config.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"web_browsing env_config.seed must be an integer, got {seed!r}")
        self.site = site_for(self.env_config)
        self.browser = Browser(self.site["pages"], START_PAGE)
        self._log = CallLog()
        functions = {
            "click_url": self.browser.click_url,
            "go_to_previous_page": self.browser.go_to_previous_page,
            "scroll_down": self.browser.scroll_down,
            "scroll_up": self.browser.scroll_up,
            "view": self.browser.view,
            "calculator": calculator,
        }
        self._tools = {doc.name: self._log.wrap(doc.name, functions[doc.name]) for doc in TOOL_DOCS}

    @property
    def metadata(self) -> dict:
        """The site's item and person facts (ground truth for templated questions; not shown to agents)."""
        return self.site["metadata"]

    def tools(self) -> dict[str, Callable[..., Any]]:
        return dict(self._tools)

    def tool_docs(self) -> list[dict]:
        """[{"name", "description", "signature"}] in benchmark order: what an M3ToolEval prompt lists."""
        return [doc.as_dict() for doc in TOOL_DOCS]

    def tool_specs(self) -> list[dict]:
        return [openai_schema(doc) for doc in TOOL_DOCS]

    def discovery_tools(self, seed: int = 0) -> dict[str, Callable[..., Any]]:
        return discovery_tools(self.site["pages"])

    def discovery_specs(self) -> list[dict]:
        return discovery_specs()

    def describe(self) -> str:
        return (
            f"A text web browser on the web site of {self.site['company']} ({len(self.site['pages'])} pages: products"
            " with prices, team members with their department, email, phone and expertise, and more). The browser"
            f" starts on page '{START_PAGE}' and shows {LINES_PER_VIEW} lines at a time; open a page with"
            " click_url('<name>') for any [Clickable '<name>'] link, scroll with scroll_down()/scroll_up(), go back"
            " with go_to_previous_page(), re-read the view with view(). calculator('<expr>') evaluates arithmetic."
        )

    def snapshot(self) -> dict:
        browser = self.browser
        return {
            "site": self.site["source"],
            "current_page": browser.current_page,
            "scroll_position": browser.scroll_position,
            "history": list(browser.history),
            "visited": browser.visited[:MAX_LOGGED_CALLS],
            **self._log.snapshot(),
        }
