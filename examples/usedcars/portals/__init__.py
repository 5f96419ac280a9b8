"""This dealership's own page objects (searched before dealerbot's shipped ones)."""
