"""A declared list read from a saved page, without a browser or the network: what a project's
own tests use (``dealerbot init`` writes one) to check a selector file's table against a page of
the portal saved as HTML, with the very reader a bot's :class:`~dealerbot.pages.common.HeaderTable`
uses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dealerbot.web.html_reader import HtmlReader
    from dealerbot.web.locators import SelectorFile


class _SavedPage:
    """What :meth:`HeaderTable.read <dealerbot.pages.common.HeaderTable.read>` needs of a session."""

    def __init__(self, name: str, selectors: SelectorFile, reader: HtmlReader) -> None:
        self.name = name
        self.selectors = selectors
        self.html = reader


def read_saved_table(portal: str, table: str, page_html: str, home: Path | None = None) -> list[dict[str, str]]:
    """The rows (field -> cell text) of the table declared as ``table`` in ``portal``'s selector
    file (the project folder ``home``'s ``selectors/<portal>.yaml``, see
    :func:`~dealerbot.web.locators.portal_selectors_path`), read from ``page_html``.

    Raises:
        SelectorFileError: the selector file is malformed (file and line named).
        UnknownSelector: the file declares no such table.
        PageChanged: the page has no such table, or lacks one of its column headers (named).
    """
    from lxml import html

    from dealerbot.pages.common import HeaderTable
    from dealerbot.web.html_reader import HtmlReader
    from dealerbot.web.locators import load_selector_file, portal_selectors_path

    selectors = load_selector_file(portal_selectors_path(portal, home=home))
    page = _SavedPage(portal, selectors, HtmlReader(selectors))
    return HeaderTable(page, table).read(html.fromstring(page_html))  # type: ignore[arg-type]
