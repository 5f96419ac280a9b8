"""files.py on real folders: which folder the Windows branch restricts, and the POSIX modes."""

from __future__ import annotations

import os
import stat

import pytest

from dealerbot.private_files import private_dir, topmost_missing, write_private_text


def test_the_folder_whose_access_list_the_rest_inherits_is_the_topmost_one_created(tmp_path):
    (tmp_path / "state").mkdir()
    assert topmost_missing(tmp_path / "state" / "locks" / "S01") == tmp_path / "state" / "locks"
    assert topmost_missing(tmp_path / "state" / "locks") == tmp_path / "state" / "locks"
    assert topmost_missing(tmp_path / "state") is None  # existed before: left as it is
    assert topmost_missing(tmp_path / "var") == tmp_path / "var"


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_private_dir_and_files_are_the_users_alone_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0o022)
    try:
        (tmp_path / "logs").mkdir(mode=0o755)
        folder = private_dir(tmp_path / "logs" / "run-1" / "evidence")
        write_private_text(folder / "note.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o755  # not asked for: left as it was
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "note.txt").stat().st_mode) == 0o600
    assert not [p for p in folder.iterdir() if p.name.startswith(".note.txt.tmp")]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_the_parents_private_dir_creates_are_private_too(tmp_path):
    """dealerbot used as a library (no CLI, so no umask 077): the folders made on the way are
    0700 as well, not 0755."""
    old = os.umask(0o022)
    try:
        private_dir(tmp_path / "logs" / "run-1" / "evidence")
    finally:
        os.umask(old)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (tmp_path / "logs", tmp_path / "logs" / "run-1")}
    assert modes == {"logs": "0o700", "run-1": "0o700"}
