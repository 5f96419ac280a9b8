"""dealerbot: RPA bots between a car maker's dealer portal and a dealership's DMS."""

__version__ = "0.1.0"
