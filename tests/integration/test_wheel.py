"""The wheel a dealership installs (`pip install dealerbot`), not the checkout's editable install.

The wheel is built from a clean copy of the tracked sources (no build/ left over from an earlier
build), its file list is checked against the source tree, and it is installed into a fresh
virtual environment outside the checkout and driven from an empty folder, as a user would. The
fresh environment gets dealerbot from the wheel only; its dependencies come from the test run's
own environment (a .pth line), so the test takes seconds, not the minute and a half a full
install from the registry takes (`.ci/run` does that one, with the `postgres` extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("bots", "portals", "selectors")  # the repository's folders the wheel carries as dealerbot.shipped.*
SHIPPED_FILES = ("dictionary.yaml",)  # the demo's data dictionary (the sandbox's codes)


def _tracked(*paths: str) -> list[str]:
    """The files under ``paths`` a clean clone would have, new ones not yet committed included
    (POSIX paths relative to the checkout; nothing git ignores)."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths]
        out = subprocess.run(listed, cwd=ROOT, capture_output=True, check=True)
        return [p for p in out.stdout.decode().split("\0") if p and (ROOT / p).is_file()]
    found = []
    for path in paths:  # a source tarball: every file but caches
        base = ROOT / path
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        found += [p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    return found


def _in_wheel(path: str) -> str:
    """Where a checkout file lands in the wheel."""
    if path.startswith("src/"):
        return path.removeprefix("src/")
    return f"dealerbot/shipped/{path}"


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("DEALERBOT_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra, COLUMNS="200", NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by pip (as `pip install .` would) from a copy of the tracked sources."""
    source = tmp_path_factory.mktemp("source")
    for path in _tracked("."):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600, env=_clean_env())
    assert built.returncode == 0, built.stdout + built.stderr
    (dist / "build.log").write_text(built.stdout + built.stderr, encoding="utf-8")
    (found,) = dist.glob("dealerbot-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed (no editable
    finder, no checkout on the path); the dependencies are this environment's."""
    env_dir = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                               capture_output=True, text=True, timeout=300, env=_clean_env())
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # After the wheel's own site-packages: the dependencies (a path line: that folder's .pth files,
    # the checkout's editable finder among them, are not run).
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return env_dir


def _site(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def _dealerbot(venv: Path, args: list[str], cwd: Path, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "dealerbot"), *args], cwd=cwd, env=_clean_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_holds_every_module_and_data_file_and_nothing_top_level_but_dealerbot(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {_in_wheel(p) for p in _tracked("src/dealerbot", *SHIPPED, *SHIPPED_FILES)}
    assert "dealerbot/group/engine.py" in expected and "dealerbot/shipped/selectors/dms_desktop.yaml" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {len(missing)} files: {missing}"
    extra = sorted(n for n in names - expected if not n.split("/")[0].endswith(".dist-info"))
    assert not extra, f"the wheel holds files the source tree does not: {extra}"
    log = (wheel.parent / "build.log").read_text(encoding="utf-8")
    assert "absent from the `packages` configuration" not in log, log  # a folder of files the wheel would skip
    top = {n.split("/")[0] for n in names}
    assert top == {"dealerbot", wheel.name.split("-py3")[0] + ".dist-info"}, f"top-level names in site-packages: {top}"


def test_every_module_imports_from_the_installed_wheel(venv, tmp_path):
    modules = sorted(
        p.removeprefix("src/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for p in _tracked("src/dealerbot")
        if p.endswith(".py") and "/migrations/" not in p  # Alembic's scripts run inside alembic, not on import
    )
    assert "dealerbot.group.status" in modules
    script = (
        "import importlib, importlib.util, json, sys\n"
        "errors = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        errors[name] = repr(exc)\n"
        "import dealerbot\n"
        "print(json.dumps({'errors': errors, 'from': dealerbot.__file__,\n"
        "                  'top': [n for n in ('bots', 'portals') if importlib.util.find_spec(n)]}))\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script, *modules], cwd=empty, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["errors"] == {}
    assert Path(result["from"]).is_relative_to(venv)  # the wheel's, not the checkout's
    assert result["top"] == []  # no importable `bots` or `portals` of dealerbot's
    assert not (_site(venv) / "bots").exists() and not (_site(venv) / "portals").exists()


OWN_ORDERS = '''\
from dealerbot.api import Bot


class MyOrders(Bot):
    name = "oem-orders"
    portal = "oem"
    description = "本店自己的订单机器人"

    async def run(self, ctx):
        pass
'''


def test_the_project_folders_own_bots_come_first_and_the_shipped_ones_otherwise(venv, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = _dealerbot(venv, ["bots"], empty)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in ("oem-orders", "oem-customers", "dms-contracts", "dms-customers", "dms-rekey", "dms-desktop-rekey"):
        assert name in listed.stdout
    assert "厂家门户订单（含详情），默认增量" in listed.stdout  # the shipped oem-orders
    assert sorted(p.name for p in empty.iterdir()) in ([], ["logs"])  # nothing written but logs

    shop = tmp_path / "shop"
    (shop / "bots").mkdir(parents=True)
    (shop / "bots" / "__init__.py").write_text("", encoding="utf-8")
    (shop / "bots" / "oem_orders.py").write_text(OWN_ORDERS, encoding="utf-8")
    own = _dealerbot(venv, ["bots"], shop)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "本店自己的订单机器人" in own.stdout and "厂家门户订单（含详情），默认增量" not in own.stdout
    assert "oem-customers" in own.stdout and "dms-rekey" in own.stdout  # the other shipped bots stay


def test_another_packages_top_level_bots_and_portals_do_not_hide_dealerbots(venv, tmp_path):
    """Generic names another installed package may claim (here: found first on the path):
    dealerbot neither imports nor uses them."""
    other = tmp_path / "other"
    for name in ("bots", "portals"):
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"raise ImportError('another package named {name}')\n", encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = _dealerbot(venv, ["bots"], empty, PYTHONPATH=str(other))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "oem-orders" in listed.stdout and "dms-rekey" in listed.stdout


@pytest.mark.browser
def test_the_demo_runs_from_an_empty_folder(venv, tmp_path):
    """`pip install dealerbot` then `dealerbot demo`: the sandbox, the bots, the selector files
    and the data dictionary all come with the wheel."""
    empty = tmp_path / "empty"
    empty.mkdir()
    demo = _dealerbot(venv, ["demo", "--orders", "30"], empty, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert list((empty / "out").glob("demo-final-*.xlsx")), demo.stdout[-2000:]
