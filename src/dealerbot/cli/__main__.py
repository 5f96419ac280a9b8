"""``python -m dealerbot.cli``: the ``dealerbot`` command."""

from dealerbot.cli.main import main

if __name__ == "__main__":  # pragma: no cover
    main()
