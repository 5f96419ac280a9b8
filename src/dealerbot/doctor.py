"""``dealerbot doctor``: is this computer ready to run dealerbot? Checks and explains in Chinese.

Each check gives one line, 正常 (ok), 注意 (a warning: runs work, something is worse than it
should be) or 问题 (a problem: a run needs this), with what was found and, when it is not ok,
what to do. The checks: the configuration file, the browser (Edge, Chrome or Chromium, which
one and where), a Chinese (CJK) font for screenshots, the OS keyring and each portal's
password, a display for the desktop bot, the console's port, the run store and the data
folders (writable, private to the user), and the years the holiday data covers.

Nothing is changed on the machine: folders that do not exist yet are not created (the nearest
existing parent is tried instead), the keyring is only read, a port is bound and released.
Written for any OS; the Windows branches (fonts folder, interactive session, user profile) can
only run on Windows (docs/windows.md says which code paths are exercised where).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dealerbot.config import SHIPPED_PORTALS, Settings

if TYPE_CHECKING:
    from dealerbot.web.browser import LaunchSpec

OK, WARN, PROBLEM = "正常", "注意", "问题"
F = TypeVar("F", bound=Callable[..., object])

# Chinese fonts Windows ships (微软雅黑, 宋体, 黑体, 等线, 楷体, 仿宋) and common free ones.
WINDOWS_CJK_FONTS = (
    "msyh.ttc", "msyh.ttf", "msyhl.ttc", "simsun.ttc", "simsun.ttf", "simhei.ttf", "deng.ttf", "simkai.ttf",
    "simfang.ttf", "msjh.ttc", "mingliub.ttc",
)
WINDOWS_CJK_PATTERNS = ("NotoSansSC*", "NotoSansCJK*", "NotoSerifCJK*", "SourceHanSans*", "wqy-*")
MAC_CJK_FONTS = (
    "/System/Library/Fonts/PingFang.ttc", "/System/Library/Fonts/STHeiti Light.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc", "/Library/Fonts/Arial Unicode.ttf",
)
PROBE_NAME = "doctor-probe:nobody"  # a keyring entry that is only ever read


@dataclass(frozen=True)
class Check:
    """One check's result: ``status`` is :data:`OK`, :data:`WARN` or :data:`PROBLEM`."""

    name: str
    status: str
    detail: str
    fix: str = ""


def run_checks(settings: Settings | None, config_error: str = "", host: str = "127.0.0.1", port: int = 8750) -> list[Check]:
    """Every check, in the order shown. ``settings`` None (with ``config_error``): the
    configuration could not be read, and the checks that need it are reported as not done."""
    checks: list[Check] = [_config_check(settings, config_error)]
    order: list[Callable[[], Check | list[Check]]] = [
        _bind(browser_check, settings), font_check, keyring_check, _bind(passwords_checks, settings),
        _bind(display_check, settings), _titled("控制台端口")(lambda: port_check(host, port)),
        _bind(store_check, settings), _bind(folders_check, settings), _bind(flows_check, settings),
        _titled("节假日数据")(lambda: calendar_check(settings=settings)),
    ]
    for check in order:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - a check that broke is itself a finding
            result = Check(getattr(check, "title", "检查"), PROBLEM, f"检查时出错：{type(exc).__name__}: {exc}")
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def _bind(check: Callable[[Settings], Check | list[Check]], settings: Settings | None) -> Callable[[], Check | list[Check]]:
    def bound() -> Check | list[Check]:
        if settings is None:
            return Check(getattr(check, "title", "检查"), WARN, "配置文件有误，未检查（先解决上面的配置问题）")
        return check(settings)

    bound.title = getattr(check, "title", "检查")  # type: ignore[attr-defined]
    return bound


def _titled(title: str) -> Callable[[F], F]:
    """Name a check (for the line of a check that broke)."""
    def mark(fn: F) -> F:
        fn.title = title  # type: ignore[attr-defined]
        return fn

    return mark


def _config_check(settings: Settings | None, error: str) -> Check:
    if settings is None:
        return Check("配置文件", PROBLEM, error, "按上面的提示修改 dealerbot.toml（文件名、行号和键名已写明）")
    if settings.source is None:
        return Check("配置文件", OK, f"没有 dealerbot.toml（{Path.cwd()}）：使用内置的练习环境设置，可以运行 dealerbot demo；"
                                   "正式使用请复制 dealerbot.example.toml 为 dealerbot.toml 并修改")
    return Check("配置文件", OK, str(settings.source))


# -- the browser ------------------------------------------------------------------------------

def browser_name(executable: str | None, channel: str | None) -> str:
    """Which browser a launch spec names: Microsoft Edge, Google Chrome or Chromium."""
    text = (channel or Path(executable or "").name).lower()
    if "edge" in text:
        return "Microsoft Edge"
    if "headless-shell" in text or "headless_shell" in text:
        return "Chromium（无界面版 headless shell）"
    if "chrome" in text and "chromium" not in text:
        return "Google Chrome"
    return "Chromium"


def _bundled_chromium() -> str | None:
    """Where Playwright's own Chromium would be (its driver is asked; None without one)."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            return pw.chromium.executable_path
    except Exception:  # noqa: BLE001 - no driver or no bundled build registered
        return None


@_titled("浏览器")
def browser_check(settings: Settings) -> Check:
    """The browser a run would drive (for headless runs, and for ``--headed`` when different)."""
    from dealerbot.errors import BrowserNotFound
    from dealerbot.web.browser import BROWSER_ENV, find_browser

    bundled = _bundled_chromium()
    try:
        spec = find_browser(settings.browser, bundled, settings.browser.headless)
    except BrowserNotFound as exc:
        tried = str(exc).split("\n")
        return Check("浏览器", PROBLEM, "没有找到可用的浏览器（Edge、Chrome 或 Chromium）。" + "；".join(t.strip() for t in tried[:8]),
                     "Windows 10/11 自带 Microsoft Edge：如已卸载请重新安装 Edge 或 Chrome；Debian/Ubuntu："
                     f"sudo apt-get install chromium；或设置环境变量 {BROWSER_ENV}（或 dealerbot.toml 的 [browser] executable）"
                     "为 Chrome/Edge/Chromium 的程序路径")
    detail = _describe_spec(spec, bundled)
    if settings.browser.headless:
        with contextlib.suppress(BrowserNotFound):
            headed = find_browser(settings.browser, bundled, False)
            if headed != spec:
                detail += f"；显示窗口运行（--headed）时用 {_describe_spec(headed, bundled)}"
    return Check("浏览器", OK, detail)


def _describe_spec(spec: LaunchSpec, bundled: str | None) -> str:
    if spec.executable:
        return f"{browser_name(spec.executable, None)}：{spec.executable}（{_source_text(spec.source)}）"
    if spec.channel:
        return f"{browser_name(None, spec.channel)}：Playwright 渠道 {spec.channel}（{_source_text(spec.source)}）"
    return f"Chromium（Playwright 自带）：{bundled}"


def _source_text(source: str) -> str:
    return {"system browser": "系统中安装的浏览器"}.get(source, f"由 {source} 指定")


# -- a Chinese font -------------------------------------------------------------------------

def windows_fonts_check(folders: list[Path]) -> Check:
    """The Windows way: a Chinese font file (微软雅黑 ``msyh.ttc``, 宋体 ``simsun.ttc``...) in
    one of ``folders`` (``%WINDIR%\\Fonts``, the user's own fonts folder)."""
    for folder in folders:
        found = [folder / n for n in WINDOWS_CJK_FONTS if (folder / n).is_file()]
        found += [p for pattern in WINDOWS_CJK_PATTERNS for p in sorted(folder.glob(pattern))]
        if found:
            return Check("中文字体", OK, f"{found[0].name}（{folder}，共 {len(found)} 个中文字体文件）")
    return Check("中文字体", WARN, f"{'、'.join(map(str, folders))} 中没有中文字体：失败截图中的中文会显示为方框",
                 "设置 → 时间和语言 → 语言和区域 → 添加语言：中文(简体，中国)，或安装微软雅黑字体")


@_titled("中文字体")
def font_check() -> Check:
    """A font with Chinese glyphs, without which screenshots of Chinese pages show boxes."""
    fonts_linux = "fonts-noto-cjk（或 fonts-wqy-microhei）"
    fix_linux = f"sudo apt-get install {fonts_linux}"
    if sys.platform == "win32":  # pragma: no cover - Windows only
        folders = [Path(os.environ.get("WINDIR") or r"C:\Windows") / "Fonts"]
        if os.environ.get("LOCALAPPDATA"):
            folders.append(Path(os.environ["LOCALAPPDATA"]) / "Microsoft" / "Windows" / "Fonts")
        return windows_fonts_check(folders)
    if sys.platform == "darwin":  # pragma: no cover - macOS only
        found_mac = [p for p in MAC_CJK_FONTS if Path(p).is_file()]
        if found_mac:
            return Check("中文字体", OK, found_mac[0])
        return Check("中文字体", WARN, "没有找到苹方等中文字体：失败截图中的中文会显示为方框", "安装一个中文字体（如 Noto Sans SC）")
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return Check("中文字体", WARN, "没有 fc-list，无法检查中文字体（截图中的中文可能显示为方框）", f"sudo apt-get install fontconfig {fonts_linux}")
    done = subprocess.run([fc_list, ":lang=zh", "family", "file"], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        return Check("中文字体", WARN, "没有中文字体（fc-list :lang=zh 为空）：失败截图中的中文会显示为方框", fix_linux)
    file, _, families = sorted(lines)[0].partition(": ")
    return Check("中文字体", OK, f"{families.split(',')[0]}（{file}，共 {len(lines)} 个中文字体）")


# -- passwords ----------------------------------------------------------------------------------

@_titled("系统钥匙串")
def keyring_check() -> Check:
    """Whether the OS keyring (Windows Credential Manager, Secret Service...) can be read."""
    from dealerbot.credentials import KEYRING_SERVICE

    try:
        import keyring

        backend = keyring.get_keyring()
        keyring.get_password(KEYRING_SERVICE, PROBE_NAME)
    except Exception as exc:  # noqa: BLE001 - every backend fails its own way
        return Check("系统钥匙串", WARN, f"不可用（{type(exc).__name__}）：dealerbot credentials set 无法保存密码",
                     "改用环境变量保存门户密码，例如 DEALERBOT_OEM_PASSWORD、DEALERBOT_DMS_PASSWORD；"
                     "Linux 桌面可安装 gnome-keyring；Windows 使用“凭据管理器”，一般无需设置")
    return Check("系统钥匙串", OK, f"可用（{type(backend).__module__}.{type(backend).__name__}）")


@_titled("门户密码")
def passwords_checks(settings: Settings) -> list[Check]:
    """Each configured portal's password found (environment or keyring; never shown): a
    problem when missing from a real configuration, left out for the built-in demo settings."""
    from dealerbot.credentials import env_name, get_password
    from dealerbot.errors import CredentialsMissing

    checks = []
    store = settings.own_store
    for portal in settings.portal_names:
        username = settings.portal(portal).username
        if settings.source is not None and portal in SHIPPED_PORTALS and portal not in settings.model_fields_set:
            # a project of its own portals (`dealerbot init`): the built-in OEM/DMS defaults are the sandbox's
            checks.append(Check(f"{portal} 密码", OK, f"{settings.source.name} 中没有 [{portal}]：不使用该门户，无需密码"))
            continue
        if not settings.portal(portal).needs_login:
            checks.append(Check(f"{portal} 密码", OK, "该门户不需要登录，无需密码"))
            continue
        where = next((f"环境变量 {env_name(portal, s)}" for s in ((store, "") if store else ("",)) if os.environ.get(env_name(portal, s))), "")
        try:
            get_password(portal, username, store)
        except CredentialsMissing:
            if settings.source is None:
                continue  # the built-in sandbox settings: the demo brings its own passwords
            flag = f" --store {store}" if store else ""
            checks.append(Check(f"{portal} 密码", PROBLEM, f"没有 {portal} 用户 {username} 的密码",
                                f"运行 dealerbot{flag} credentials set {portal} 保存到系统钥匙串，或设置环境变量 {env_name(portal, store)}"))
            continue
        checks.append(Check(f"{portal} 密码", OK, f"用户 {username}：已找到（{where or '系统钥匙串'}）"))
    return checks


# -- a display for the desktop bot ----------------------------------------------------------

@_titled("桌面显示")
def display_check(settings: Settings) -> Check:
    """A desktop to type into: a problem only when the desktop bot is configured."""
    needed = settings.rekey.client == "desktop"
    bad = PROBLEM if needed else OK
    why = "[rekey] client = \"desktop\"：桌面机器人需要" if needed else "网页机器人不需要；只有桌面版DMS机器人需要"
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return _windows_session(needed, why)
    if sys.platform == "darwin":  # pragma: no cover - macOS only
        return Check("桌面显示", OK, "macOS 桌面")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        return Check("桌面显示", bad, f"没有显示器（DISPLAY 未设置）：{why}",
                     "在已登录的图形桌面中运行，或使用 Xvfb（xvfb-run dealerbot ...）" if needed else "")
    missing = [tool for tool in ("xdotool", "xclip") if shutil.which(tool) is None]
    if missing:
        return Check("桌面显示", bad, f"显示器 {display}，但缺少 {'、'.join(missing)}：{why}",
                     f"sudo apt-get install {' '.join(missing)}" if needed else "")
    try:
        answer = subprocess.run(["xdotool", "getdisplaygeometry"], capture_output=True, text=True, timeout=10,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        answer = subprocess.CompletedProcess([], 1, "", "no answer in 10 s")
    if answer.returncode != 0:
        reason = (answer.stderr.strip().splitlines() or ["?"])[0]
        return Check("桌面显示", bad, f"无法连接显示器 {display}（{reason}）：{why}",
                     "确认图形桌面已登录，DISPLAY 指向它" if needed else "")
    return Check("桌面显示", OK, f"显示器 {display}（{answer.stdout.strip()}），xdotool 和 xclip 已安装")


def _windows_session(needed: bool, why: str) -> Check:  # pragma: no cover - Windows only
    """An interactive, unlocked session: not Session 0 (services), not a locked desktop or a
    disconnected remote desktop (both leave no input desktop to type into)."""
    import ctypes

    bad = PROBLEM if needed else OK
    kernel32, user32 = ctypes.windll.kernel32, ctypes.windll.user32  # type: ignore[attr-defined]
    session = ctypes.c_ulong(0)
    if kernel32.ProcessIdToSessionId(kernel32.GetCurrentProcessId(), ctypes.byref(session)) and session.value == 0:
        return Check("桌面显示", bad, f"在 Session 0（Windows 服务）中运行，没有桌面：{why}",
                     "不要作为 Windows 服务运行：用任务计划程序“登录时”启动，并选“只在用户登录时运行”（见 docs/windows.md）")
    user32.OpenInputDesktop.restype = ctypes.c_void_p  # an HDESK handle
    user32.CloseDesktop.argtypes = [ctypes.c_void_p]
    desktop = user32.OpenInputDesktop(0, False, 0x0100)  # DESKTOP_SWITCHDESKTOP
    if not desktop:
        return Check("桌面显示", bad, f"桌面已锁定，或远程桌面已断开：{why}",
                     "运行期间保持登录且不锁屏：关闭屏幕保护和自动锁屏；远程桌面不要“断开”，用 tscon 把会话切回控制台")
    user32.CloseDesktop(desktop)
    if user32.GetSystemMetrics(0x1000):  # SM_REMOTESESSION
        return Check("桌面显示", WARN if needed else OK, f"远程桌面会话（会话 {session.value}）：断开连接后桌面机器人无法工作",
                     "离开前不要断开远程桌面；用 tscon 把会话切回控制台" if needed else "")
    return Check("桌面显示", OK, f"已登录的桌面（会话 {session.value}）")


# -- the console's port ---------------------------------------------------------------------

@_titled("控制台端口")
def port_check(host: str, port: int) -> Check:
    """Whether ``dealerbot console`` / ``serve`` could listen on ``host:port`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            if _console_answers(host, port):  # dealerbot serve already runs: nothing to fix
                return Check("控制台端口", OK, f"dealerbot 控制台已经在 http://{host}:{port}/ 运行")
            return Check("控制台端口", PROBLEM, f"{host}:{port} 已被其他程序占用（{exc.strerror or exc}）",
                         f"关闭占用端口的程序，或用 --port 换一个端口（例如 dealerbot serve --port {port + 1}）")
    return Check("控制台端口", OK, f"{host}:{port} 空闲")


def _console_answers(host: str, port: int) -> bool:
    import httpx

    try:
        answer = httpx.get(f"http://{host}:{port}/login", timeout=2.0)
    except httpx.HTTPError:
        return False
    return "dealerbot 控制台" in answer.text


# -- the store and the data folders ---------------------------------------------------------

def _probe_folder(folder: Path) -> str:
    """'' when a file can be created in ``folder`` (or, when it does not exist yet, in its
    nearest existing parent: dealerbot will create it there); else why not."""
    target = folder
    while not target.exists():
        if target.parent == target:
            return f"{folder}：路径不存在"
        target = target.parent
    if not target.is_dir():
        return f"{target} 不是文件夹"
    try:
        fd, name = tempfile.mkstemp(prefix=".dealerbot-doctor-", dir=target)
    except OSError as exc:
        return f"{target} 不可写（{exc.strerror or exc}）"
    os.close(fd)
    os.unlink(name)
    return ""


@_titled("流程")
def flows_check(settings: Settings) -> Check:
    """The flows `dealerbot sync` runs ([flows] enabled) and each one's approvals; a flow named
    there but declared nowhere, or an action kind it does not have, is a problem naming the key."""
    from dealerbot.errors import DealerbotError
    from dealerbot.flows.registry import check_flows

    try:
        lines = check_flows(settings)
    except DealerbotError as exc:
        return Check("流程", PROBLEM, str(exc), "改正 dealerbot.toml 的 [flows] 部分（dealerbot flows 列出已有的流程）")
    return Check("流程", OK, "；".join(lines) if lines else "没有启用任何流程（[flows] enabled 为空）：sync 只会生成工作簿")


@_titled("存储")
def store_check(settings: Settings) -> Check:
    """The run store: SQLite's folder (or nearest existing parent) and file writable, or the
    database answering."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.store_url)
    if url.get_backend_name() != "sqlite":
        return _database_check(settings.store_url)
    db = Path(url.database or "")
    why = _probe_folder(db.parent)
    if not why and db.exists() and not os.access(db, os.W_OK):
        why = f"{db} 不可写"
    if why:
        return Check("存储", PROBLEM, f"运行记录数据库无法写入：{why}",
                     "确认当前用户对该文件夹有写权限，或在 dealerbot.toml 的 [paths] var 中换一个文件夹")
    return Check("存储", OK, f"{db}（{'可写入' if db.exists() else '首次运行时创建'}）")


def _database_check(url: str) -> Check:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver's error
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Check("存储", PROBLEM, f"无法连接数据库 {shown}：{first}", "确认数据库服务在运行、地址和用户正确")
    finally:
        engine.dispose()
    return Check("存储", OK, f"数据库 {shown} 可连接")


@_titled("数据文件夹")
def folders_check(settings: Settings) -> list[Check]:
    """``logs``, ``state`` and ``out`` writable, and the data folders private."""
    folders = [settings.path(name) for name in ("logs", "state", "out")]
    bad = [why for folder in folders if (why := _probe_folder(folder))]
    if bad:
        checks = [Check("数据文件夹", PROBLEM, "无法写入：" + "；".join(bad),
                        "确认当前用户对这些文件夹有写权限，或在 dealerbot.toml 的 [paths] 中换文件夹")]
    else:
        checks = [Check("数据文件夹", OK, "可写入：" + "、".join(str(f) for f in folders))]
    return [*checks, privacy_check(settings)]


def privacy_check(settings: Settings) -> Check:
    """Customer data readable by this user only: POSIX modes, or on Windows a folder under the
    user's profile (dealerbot restricts the folders it creates with an ACL, files.py)."""
    folders = [settings.path(name) for name in ("logs", "state", "out", "var")]
    if sys.platform == "win32":  # pragma: no cover - Windows only
        profile = Path.home().resolve()
        outside = [f for f in folders if not f.resolve().is_relative_to(profile)]
        if outside:
            return Check("数据隐私", WARN, f"数据文件夹不在用户文件夹 {profile} 中：{'、'.join(map(str, outside))}",
                         f"把 dealerbot 的工作文件夹放在 {profile} 下（例如 {profile / 'dealerbot'}）；"
                         "dealerbot 新建的数据文件夹会设置为只有当前用户可访问")
        return Check("数据隐私", OK, f"数据文件夹在用户文件夹 {profile} 中，其他用户无法访问")
    if os.name != "posix":  # pragma: no cover
        return Check("数据隐私", OK, "未检查（此系统）")
    shared = [f"{f}（{oct(f.stat().st_mode & 0o777)[2:]}）" for f in folders if f.is_dir() and f.stat().st_mode & 0o077]
    if shared:
        mine = all(Path(f.split("（")[0]).stat().st_uid == os.getuid() for f in shared)
        return Check("数据隐私", WARN if mine else PROBLEM, f"其他用户可以访问：{'、'.join(shared)}",
                     "下次运行时 dealerbot 会把它们改为 700" if mine else "这些文件夹属于其他用户：请换一个 [paths] 文件夹")
    return Check("数据隐私", OK, "客户数据只有当前用户可读（文件 600，文件夹 700）")


# -- the holiday data -----------------------------------------------------------------------

@_titled("节假日数据")
def calendar_check(today: date | None = None, settings: Settings | None = None) -> Check:
    """The years the holiday data describes (``schedules/holidays.yaml`` of ``settings``, then
    ``chinesecalendar``); this year or next year missing is a warning (working-day jobs run
    Monday to Friday there), a holiday file that cannot be read a problem (the timetable
    cannot load)."""
    from dealerbot.errors import DataFileError
    from dealerbot.schedule.holidays import HOLIDAYS_FILE, WorkCalendar, load_holidays, package_version

    today = today or date.today()
    calendar = WorkCalendar()
    if settings is not None:
        try:
            calendar = load_holidays(settings.path("schedules") / HOLIDAYS_FILE)
        except DataFileError as exc:
            return Check("节假日数据", PROBLEM, str(exc), f"改正 schedules/{HOLIDAYS_FILE} 中指出的那一行")
    years = [y for y in range(2000, today.year + 2) if calendar.described_by(y) is not None]
    in_file = sorted(y for y in calendar.years if y in years)
    source = package_version() + (f" 和 schedules/{HOLIDAYS_FILE}（{'、'.join(map(str, in_file))} 年）" if in_file else "")
    covered = f"{years[0]}–{years[-1]} 年" if years else "没有任何年份"
    fix = (f"在 schedules/{HOLIDAYS_FILE} 中录入国务院公布的安排（文件中有写法示例），或更新 chinesecalendar："
           + ("py -m pip install -U chinesecalendar" if sys.platform == "win32" else "pip install -U chinesecalendar"))
    if today.year not in years:
        return Check("节假日数据", WARN, f"{source} 覆盖 {covered}，缺少今年（{today.year}）：按工作日的定时任务暂按周一至周五运行",
                     fix)
    if today.year + 1 not in years:
        return Check("节假日数据", WARN, f"{source} 覆盖 {covered}，还没有 {today.year + 1} 年（国务院通常在年底公布）："
                     f"{today.year + 1} 年起按工作日的定时任务暂按周一至周五运行", fix)
    return Check("节假日数据", OK, f"{source} 覆盖 {covered}")


# -- the report -----------------------------------------------------------------------------

def header() -> str:
    """dealerbot's and Python's version and the OS, for the first line."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        mine = package_version("dealerbot")
    except PackageNotFoundError:
        mine = "?"
    return f"dealerbot {mine} · Python {platform.python_version()} · {platform.system()} {platform.release()}"


def render(checks: list[Check], echo: Callable[[str], None]) -> int:
    """Print ``checks``; the exit code: 2 when one is a problem (a run needs it), else 0."""
    echo(f"dealerbot 运行环境检查 (doctor)：{header()}")
    for check in checks:
        echo(f"[{check.status}] {check.name}：{check.detail}")
        if check.fix and check.status != OK:
            echo(f"       解决办法：{check.fix}")
    problems = sum(c.status == PROBLEM for c in checks)
    warnings = sum(c.status == WARN for c in checks)
    if problems:
        echo(f"结果：{problems} 项问题，{warnings} 项注意。请先解决“问题”，否则 dealerbot 无法正常运行 ({problems} problem(s))")
        return 2
    if warnings:
        echo(f"结果：可以运行；{warnings} 项注意，建议处理 (ready, {warnings} warning(s))")
    else:
        echo("结果：全部正常，可以运行 (all checks passed)")
    return 0
