"""Alembic environment of the dealerbot store.

dealerbot runs its migrations itself when a store is opened (:meth:`dealerbot.store.Store.open`),
on the connection it hands over in ``config.attributes["connection"]``; there is no alembic.ini.
To write a new revision (developers only)::

    alembic -x url=sqlite:///var/dealerbot.sqlite -c /dev/null revision -m "what changes" \\
        --version-path src/dealerbot/migrations/versions

then set ``SCHEMA_HEAD`` in ``dealerbot/store/migrate.py`` to its id (a test checks they agree).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only dealerbot.store runs these migrations
    raise RuntimeError("dealerbot migrations run through dealerbot.store.Store.open, which passes a connection")

context.configure(connection=connection, render_as_batch=True, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
