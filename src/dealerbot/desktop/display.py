"""A private virtual X display (Xvfb) for a desktop client on a machine without a screen: the
tests, the benchmark, or a server where a dealership's desktop client runs headless."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from dealerbot.errors import ConfigError

START_SECONDS = 15.0


def start_virtual_display(folder: Path, size: str = "1280x800x24") -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """Start Xvfb on a free display number; returns the process and the environment
    (``DISPLAY``, ``XAUTHORITY``) a client and dealerbot need. Stop it with ``terminate()``.

    Raises:
        ConfigError: Xvfb or xdotool is missing, or the display did not come up.
    """
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise ConfigError(f"找不到 {tool}：请安装（Debian/Ubuntu: apt install xvfb xdotool） ({tool} is needed)")
    auth = folder / "Xauthority"
    auth.write_bytes(b"")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    got = b""
    while not got.endswith(b"\n"):  # the number, then the newline: read both before closing the pipe
        chunk = os.read(read, 16)
        if not chunk:
            break
        got += chunk
    os.close(read)
    env = {"DISPLAY": f":{got.decode().strip()}", "XAUTHORITY": str(auth)}
    deadline = time.monotonic() + START_SECONDS
    while subprocess.run(["xdotool", "getdisplaygeometry"], env={**os.environ, **env}, capture_output=True).returncode:
        if time.monotonic() > deadline or xvfb.poll() is not None:
            xvfb.kill()
            raise ConfigError(f"Xvfb {env['DISPLAY']} did not take connections: {xvfb.communicate()[1][-400:]!r}")
        time.sleep(0.1)
    return xvfb, env
