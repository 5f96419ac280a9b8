"""Which config file and project folder a command works in, found without reading the settings.

One home for the rule every command follows: ``--config FILE``, else ``$DEALERBOT_CONFIG``, else
``dealerbot.toml`` in the working folder; the project folder is the config file's folder, else
the working folder. :func:`dealerbot.config.load_settings` reads the file it names; a command
that needs only the folder (listing the bots) asks :func:`project_home` and pays for no settings
models.
"""

from __future__ import annotations

import os
from pathlib import Path

from dealerbot.errors import ConfigError

CONFIG_ENV = "DEALERBOT_CONFIG"
DEFAULT_CONFIG_NAME = "dealerbot.toml"


def find_config(explicit: Path | None) -> Path | None:
    """The config file to read: ``explicit``, else ``$DEALERBOT_CONFIG``, else ``dealerbot.toml``
    in the working folder when there is one (None: built-in defaults and the environment).

    Raises:
        ConfigError: the file named by ``explicit`` or the variable does not exist.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p} (from {CONFIG_ENV})")
        return p
    p = Path.cwd() / DEFAULT_CONFIG_NAME
    return p if p.is_file() else None


def project_home(explicit: Path | None) -> Path:
    """The project folder: the config file's folder, else the working folder.

    Raises:
        ConfigError: as :func:`find_config`.
    """
    path = find_config(explicit)
    return path.resolve().parent if path is not None else Path.cwd()
