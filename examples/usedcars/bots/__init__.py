"""This dealership's own bots (listed by `dealerbot bots` with the shipped ones)."""
