"""A text browser over a dict of pages, behaving as M3ToolEval's web-browsing browser does. Stdlib only.

Rendering (byte for byte as the benchmark's browser renders it):

    ----------
    [Web Page Name: /products]
    [Viewing page 1 of 2]
    <empty line>
    <up to 5 content lines>
    ----------

Quirks kept: the page count is `lines // 5 + 1` whenever a page has more than 5 lines (a 10-line page reports
"of 3"); a page's content is split on "\\n", so a trailing newline makes an empty last line; `click_url` removes
every single-quote character (so "'/about'" works) but not double quotes; any existing page name can be opened,
linked from the current page or not; going back never re-adds the page left; opening a page resets the scroll.
"""

from __future__ import annotations

LINES_PER_VIEW = 5
RULE = "-" * 10

URL_NOT_FOUND = "[URL not found.]"
NO_PREVIOUS_PAGE = "[No previous page.]"
AT_BOTTOM = "[Reached the bottom of the page.]\n"
AT_TOP = "[Reached the top of the page.]\n"


class Browser:
    def __init__(self, pages: dict[str, str], start_page: str = "/"):
        if start_page not in pages:
            raise ValueError(f"start page {start_page!r} is not a page of this site")
        self.pages = pages
        self.current_page = start_page
        self.lines = pages[start_page].split("\n")
        self.scroll_position = 0
        self.history: list[str] = []
        self.visited: list[str] = [start_page]

    def _open(self, name: str, remember_current: bool) -> str:
        if remember_current:
            self.history.append(self.current_page)
        self.current_page = name
        self.lines = self.pages[name].split("\n")
        self.scroll_position = 0
        self.visited.append(name)
        return f"[Opened page: {name}]\n" + self.view()

    def click_url(self, url):
        url = url.replace("'", "")
        if url in self.pages:
            return self._open(url, remember_current=True)
        return URL_NOT_FOUND

    def go_to_previous_page(self):
        if self.history:
            return self._open(self.history.pop(), remember_current=False)
        return NO_PREVIOUS_PAGE

    def scroll_down(self):
        if self.scroll_position + LINES_PER_VIEW < len(self.lines):
            self.scroll_position += LINES_PER_VIEW
            return self.view()
        return AT_BOTTOM

    def scroll_up(self):
        if self.scroll_position > 0:
            self.scroll_position -= LINES_PER_VIEW
            return self.view()
        return AT_TOP

    def view(self):
        total = len(self.lines)
        if total > LINES_PER_VIEW:
            page_number, page_count = self.scroll_position // LINES_PER_VIEW + 1, total // LINES_PER_VIEW + 1
        else:
            page_number, page_count = 1, 1
        header = f"[Web Page Name: {self.current_page}]\n" if self.current_page else ""
        window = self.lines[self.scroll_position : self.scroll_position + LINES_PER_VIEW]
        return f"{RULE}\n{header}[Viewing page {page_number} of {page_count}]\n\n" + "\n".join(window) + f"\n{RULE}"
