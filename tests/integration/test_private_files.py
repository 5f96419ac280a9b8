"""Customer data private to the user (POSIX modes): what the whole chain leaves behind.

test_cli.py checks a scrape, a failed run's evidence and an export; this adds the rest of the
chain (`dealerbot demo`: sync, reconcile, the review workbooks, the review import, the re-key
with its locks and read-back) in data folders that existed before, readable by everyone (as a
git checkout's ``logs/`` or a umask of 022 leaves them). The console's files are checked in
test_serve_unattended.py. On Windows the same files get an access list instead (files.py;
not run here: docs/windows.md)."""

from __future__ import annotations

import stat
import sys

import pytest

from .test_cli import dealerbot

# The demo takes 20-40 s on 2 cores: in the soak run (./run.sh soak). The default suite checks a
# scrape, a failed run and an export (test_cli.py) and serve in 0755 folders (test_serve_unattended.py).
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes"), pytest.mark.slow]
DATA_FOLDERS = ("logs", "out", "var", "state")


def test_the_whole_chain_leaves_only_private_files_even_in_folders_others_could_read(tmp_path):
    for name in DATA_FOLDERS:
        (tmp_path / name).mkdir()
        (tmp_path / name).chmod(0o755)
    result = dealerbot(["demo", "--orders", "20"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    made = [p for name in DATA_FOLDERS for p in [tmp_path / name, *(tmp_path / name).rglob("*")]]
    names = {p.name for p in made}
    assert {"demo.sqlite", "run.log", "dealerbot.jsonl"} <= names, sorted(names)
    assert sum(p.suffix == ".xlsx" for p in made) >= 3  # the sync's, the reviewed and the final workbook
    assert any(p.suffix == ".lock" for p in made)  # the re-key's lock
    # Every file 0600, every folder 0700; except that a folder dealerbot only creates folders in
    # is left as it was: the demo keeps its state in state/demo (0700) and never writes into
    # state/ itself, which keeps the 0755 it had (it lists one name, "demo", and nothing in it
    # can be opened by others). A normal run writes its saved logins there and makes it 0700.
    def private(p) -> bool:  # noqa: ANN001
        mode = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir() and mode != 0o700 and p == tmp_path / "state":
            return all(c.is_dir() and stat.S_IMODE(c.stat().st_mode) == 0o700 for c in p.iterdir())
        return mode == (0o700 if p.is_dir() else 0o600)

    wrong = [f"{p.relative_to(tmp_path)} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in made if not private(p)]
    assert not wrong, wrong
