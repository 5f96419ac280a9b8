"""dealerbot's bots: one module per bot, each orchestrating page objects.

Every non-underscore module here is imported by :func:`dealerbot.registry.discover`; each
:class:`dealerbot.bot.Bot` subclass in it becomes a bot named by its ``name``.
"""
