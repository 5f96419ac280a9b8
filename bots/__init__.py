"""dealerbot's bots: one module per bot, each orchestrating page objects.

Every non-underscore module here is imported by :func:`dealerbot.running.registry.discover`; each
:class:`dealerbot.running.bot.Bot` subclass in it becomes a bot named by its ``name``.
"""
