"""Where the files that come with dealerbot are: the shipped bots, page objects and selector
files, and the data dictionary the sandbox's codes fit.

A source checkout keeps them in the repository's top-level ``bots/``, ``portals/``,
``selectors/`` and ``dictionary.yaml`` (the layout a dealership's project folder copies). The
wheel carries the same files under dealerbot's own namespace, ``dealerbot/shipped/`` (setup.py
and pyproject.toml's ``package-dir``), so that it installs nothing top-level but ``dealerbot``:
no generic ``bots`` or ``portals`` package in site-packages. An editable install maps
``dealerbot.shipped`` onto the checkout's root, so one lookup serves both.

The shipped bots and page objects are not imported as ``dealerbot.shipped.*``: the registry
(:mod:`dealerbot.running.registry`) imports them as ``bots.<name>`` and ``portals.<name>``, from
packages it assembles from the project folder's ``bots/``/``portals/`` and these.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SHIPPED_PACKAGE = "dealerbot.shipped"


def shipped_dir() -> Path:
    """The folder holding dealerbot's shipped ``bots/``, ``portals/``, ``selectors/`` and
    ``dictionary.yaml``: the wheel's ``dealerbot/shipped/``, an editable install's checkout, or,
    when dealerbot runs from ``src/`` without being installed, the checkout next to it.
    Never raises; a caller checks that the file it wants is there."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2]
