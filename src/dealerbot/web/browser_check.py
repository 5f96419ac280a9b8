"""``python -m dealerbot.web.browser_check``: exit 0 when a browser is found, else say what was tried."""

from __future__ import annotations

import sys


def main() -> int:
    """Print the browser dealerbot would use; 1 (with the reasons) when there is none."""
    from playwright.sync_api import sync_playwright

    from dealerbot.config import load_settings
    from dealerbot.errors import DealerbotError
    from dealerbot.web.browser import find_browser

    try:
        settings = load_settings()
        with sync_playwright() as pw:
            try:
                bundled = pw.chromium.executable_path
            except Exception:  # noqa: BLE001
                bundled = None
        print(find_browser(settings.browser, bundled).describe())
        return 0
    except DealerbotError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
