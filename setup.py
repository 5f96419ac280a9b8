"""Which packages the wheel holds; setuptools reads everything else from pyproject.toml.

The packages are found, never listed by hand, so that a new subpackage cannot be left out of
the wheel: dealerbot's own under ``src/``, and the repository's ``bots/``, ``portals/`` and
``selectors/`` (data only) under ``dealerbot.shipped``, which pyproject.toml's ``package-dir``
maps onto this folder (for its ``dictionary.yaml``). Nothing but ``dealerbot`` is installed
top-level in site-packages.
"""

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

SHIPPED = ("bots", "portals", "selectors")
CACHES = ["*__pycache__*"]


class BuildPy(build_py):
    """``dealerbot.shipped`` is this folder: its data files ship, its own modules (this script) do not."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        return [] if package == "dealerbot.shipped" else super().find_package_modules(package, package_dir)


setup(
    cmdclass={"build_py": BuildPy},
    packages=[
        *find_namespace_packages("src", include=["dealerbot", "dealerbot.*"], exclude=CACHES),
        "dealerbot.shipped",
        *(f"dealerbot.shipped.{name}" for name in find_namespace_packages(
            ".", include=[f"{folder}{tail}" for folder in SHIPPED for tail in ("", ".*")], exclude=CACHES)),
    ],
)
