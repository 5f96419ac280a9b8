"""Serve the sandbox OEM portal and DMS with uvicorn in one background thread."""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from .config import SandboxConfig, SandboxPortInUse
from .state import SandboxState

if TYPE_CHECKING:
    from fastapi import FastAPI

START_TIMEOUT = 15.0
STOP_TIMEOUT = 3.0


def _bind(host: str, port: int, app: str) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP
    # (without it every keep-alive response waits ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            raise SandboxPortInUse(host, port, app) from e
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """Context manager running both sandbox apps; see docs/sandbox.md."""

    def __init__(self, cfg: SandboxConfig | None = None) -> None:
        cfg = cfg or SandboxConfig()
        token = cfg.admin_token or secrets.token_urlsafe(18)
        self.config = cfg.model_copy(update={"admin_token": token})
        self.admin_token = token
        self.oem_url = ""
        self.dms_url = ""
        self.usedcars_url = ""
        self.state: SandboxState | None = None
        self.oem_app: FastAPI | None = None
        self.dms_app: FastAPI | None = None
        self.usedcars_app: FastAPI | None = None
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        from .dms import create_dms_app
        from .oem import create_oem_app
        from .usedcars import create_usedcars_app

        cfg = self.config
        socks: list[socket.socket] = []
        try:
            socks.append(_bind(cfg.host, cfg.oem_port, "OEM"))
            socks.append(_bind(cfg.host, cfg.dms_port, "DMS"))
            socks.append(_bind(cfg.host, cfg.usedcars_port, "used-car platform"))
        except BaseException:
            for s in socks:
                s.close()
            raise
        oem_port, dms_port, used_port = (s.getsockname()[1] for s in socks)
        self.config = cfg = cfg.model_copy(update={"oem_port": oem_port, "dms_port": dms_port, "usedcars_port": used_port})
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.oem_url, self.dms_url = f"http://{host}:{oem_port}", f"http://{host}:{dms_port}"
        self.usedcars_url = f"http://{host}:{used_port}"
        try:
            self.state = SandboxState(cfg.seed, cfg.orders, cfg.customers, cfg.db_path)
            self.oem_app = create_oem_app(cfg, self.state, self.admin_token)
            self.dms_app = create_dms_app(cfg, self.state, self.admin_token)
            self.usedcars_app = create_usedcars_app(cfg, self.admin_token)
        except BaseException:
            for s in socks:
                s.close()
            if self.state is not None:
                self.state.close()
            raise
        for app in (self.oem_app, self.dms_app, self.usedcars_app):
            ucfg = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", loop="asyncio",
                                  ws="none", timeout_graceful_shutdown=1, timeout_keep_alive=5)
            self._servers.append(uvicorn.Server(ucfg))
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            tasks = [asyncio.create_task(srv.serve(sockets=[sock])) for srv, sock in zip(self._servers, socks)]
            ready.set()
            await asyncio.gather(*tasks)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as e:  # noqa: BLE001 - reported to the starting thread
                self._error = e
            finally:
                ready.set()
                for s in socks:
                    s.close()

        self._thread = threading.Thread(target=run, name="dealerbot-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        ready.wait(START_TIMEOUT)
        while time.monotonic() < deadline:
            if self._error is not None or not self._thread.is_alive():
                break
            if all(s.started for s in self._servers):
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"sandbox did not start: {self._error!r}")

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                for s in self._servers:
                    s.force_exit = True
                self._thread.join(1.0)
            self._thread = None
        if self.state is not None:
            self.state.close()
            self.state = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_forever(
    cfg: SandboxConfig | None = None, echo: Callable[[str], None] = print, token_file: Path | None = None,
    with_server: Callable[[str], Any] | None = None,
) -> int:
    """Serve both apps in the foreground until Ctrl-C / SIGTERM. Returns the exit code.

    The admin token is written to ``token_file`` (mode 0600), never printed; without a file it
    is not shown at all (set ``admin_token`` in the config to know it).
    """
    from .dms import DEMO_PASSWORD as DMS_PASSWORD
    from .dms import DEMO_USERNAME as DMS_USER
    from .oem import DEMO_DEALER_CODE, DEMO_PASSWORD, DEMO_USERNAME
    from .usedcars import DEMO_PASSWORD as USED_PASSWORD
    from .usedcars import DEMO_USERNAME as USED_USER

    stop = threading.Event()
    try:
        sb = SandboxServer(cfg).start()
    except SandboxPortInUse as e:
        echo(str(e))
        return 2
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        echo(f"厂家经销商门户 (OEM portal):             {sb.oem_url}")
        echo(f"  登录：经销商代码 {DEMO_DEALER_CODE} / 用户名 {DEMO_USERNAME} / 密码 {DEMO_PASSWORD}")
        echo(f"经销商管理系统 (DMS):                    {sb.dms_url}")
        echo(f"  登录：用户名 {DMS_USER} / 密码 {DMS_PASSWORD}")
        echo(f"二手车置换平台 (used-car trade-in platform): {sb.usedcars_url}")
        echo(f"  登录：用户名 {USED_USER} / 密码 {USED_PASSWORD}")
        if token_file is not None:
            token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(sb.admin_token + "\n")
            os.chmod(token_file, 0o600)
            echo(f"管理接口令牌 (admin token, header X-Admin-Token)：见 {token_file}（仅您本人可读）")
        helper = with_server(sb.dms_url) if with_server is not None else None  # e.g. the desktop DMS client
        echo("按 Ctrl-C 停止沙箱 (press Ctrl-C to stop).")
        while not stop.is_set():
            stop.wait(0.5)
        if helper is not None:
            helper.terminate()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        sb.stop()
    return 0
