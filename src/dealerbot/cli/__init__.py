"""The ``dealerbot`` command (Typer + rich). Thin: parses, calls the runner or a service, renders.

One module per command group: :mod:`~dealerbot.cli.runs` (run, bots, runs),
:mod:`~dealerbot.cli.review` (export, reconcile, import-review, audit, sync), :mod:`~dealerbot.cli.rollback`
(rollback), :mod:`~dealerbot.cli.demo`
(sandbox, demo), :mod:`~dealerbot.cli.serve` (console, serve), :mod:`~dealerbot.cli.group` (worker,
group), and the ``selectors``, ``dictionary``, ``credentials`` and ``schedule`` groups; what they
share is in :mod:`~dealerbot.cli.common` and :mod:`~dealerbot.cli.progress`; :mod:`~dealerbot.cli.main`
registers them all in the order ``dealerbot --help`` lists them.
"""

from dealerbot.cli.main import app, main

__all__ = ["app", "main"]
