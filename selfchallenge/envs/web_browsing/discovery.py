"""Challenger-only discovery tools for web browsing: the site map and any page read whole. Read-only; never given
to the executor, who must find pages by clicking links and scrolling (see `Environment.discovery_tools`)."""

from __future__ import annotations

from ..toolkit import ToolDoc, openai_schema

DISCOVERY_DOCS = [
    ToolDoc("site_map", "Challenger only: the name of every page of the site, one per line.", "site_map() -> str"),
    ToolDoc(
        "read_page",
        "Challenger only: the whole content of a page by name, without clicking or scrolling.",
        "read_page(url: str) -> str",
    ),
]


def discovery_tools(pages: dict[str, str]) -> dict:
    def site_map() -> str:
        return "\n".join(sorted(pages))

    def read_page(url: str) -> str:
        name = str(url).strip().strip("'\"")
        if name not in pages:
            raise ValueError(f"no page named {name!r}; site_map() lists the pages")
        return pages[name]

    return {"site_map": site_map, "read_page": read_page}


def discovery_specs() -> list[dict]:
    return [openai_schema(doc) for doc in DISCOVERY_DOCS]
