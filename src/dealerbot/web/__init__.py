"""The browser and everything that talks to a portal through it: launching, logged-in sessions,
HTTP reads with the browser's cookies, selectors by name, forms, ``dealerbot selectors check``."""
