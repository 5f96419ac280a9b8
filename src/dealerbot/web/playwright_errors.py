"""Playwright's two error classes, without loading its whole API.

``playwright.async_api`` takes about as long to import as the rest of a command that starts no
browser (``dealerbot bots``, ``runs``, ``--help``; ``bench/startup.py``). The modules a bot
imports catch these errors, so they import them from here: the same classes
(``playwright.async_api.Error`` and ``TimeoutError`` are these, a unit test checks), from the
small module that defines them.
"""

from playwright._impl._errors import Error as PlaywrightError
from playwright._impl._errors import TimeoutError as PlaywrightTimeout

__all__ = ["PlaywrightError", "PlaywrightTimeout"]
