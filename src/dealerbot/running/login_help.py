"""A person's help with a portal's login: the one home of asking for what only a person has
(an SMS code, a captcha's answer, a new password the portal forces on a first login).

A run gets one :class:`LoginHelp` from whoever started it:

- a run started in a terminal (``dealerbot run`` with stdin a TTY): :class:`TerminalHelp`, a
  prompt on that terminal;
- a run started in the console: :class:`ConsoleHelp`, a box on the run's page (the console
  process holds the question; the page's POST answers it; the waiting run goes on);
- an unattended run (timetable, serve, group, no TTY): no help at all (``None``): the login
  stops at once with :class:`~dealerbot.errors.NeedsPerson` before typing anything a person
  would have to finish (never a guess, never a retry).

Answers are secrets: the run's masker learns each before it is typed (see
:meth:`dealerbot.running.context.BotContext.portal`).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dealerbot.errors import NeedsPerson, StopRequested

# What a login may need from a person, in the words a person reads.
NEEDS = {"sms_code": "短信验证码", "captcha": "图形验证码", "new_password": "新密码"}
CONSOLE_WAIT_SECONDS = 600  # a console run waits this long for the box to be answered


@dataclass
class Question:
    """One thing a run's login asks a person for."""

    run_id: str
    portal: str  # the portal's name
    title: str  # the portal's title ("厂家门户")
    need: str  # a key of NEEDS
    prompt: str  # what to type, in Chinese
    image: bytes | None = None  # the captcha as the page shows it (PNG), never kept on disk by the console
    key: str = field(default_factory=lambda: secrets.token_hex(4))  # tells one question from the next
    answered: asyncio.Future[str] | None = field(default=None, repr=False)


class LoginHelp:
    """Asks a person; subclasses say where."""

    async def ask(self, question: Question) -> str:
        """The person's answer (stripped).

        Raises:
            NeedsPerson: nobody answered (the run ends ``needs_person``).
        """
        raise NotImplementedError


class TerminalHelp(LoginHelp):
    """A prompt on the terminal the run was started from (its input hidden for a new password)."""

    async def ask(self, question: Question) -> str:
        from rich.console import Console
        from rich.prompt import Prompt

        console = Console(stderr=True)
        if question.image:
            import tempfile

            with tempfile.NamedTemporaryFile(prefix="dealerbot-captcha-", suffix=".png", delete=False) as fh:
                fh.write(question.image)
            console.print(f"图形验证码图片：{fh.name}（看完即可删除）")
        hidden = question.need == "new_password"

        def prompt() -> str:
            return Prompt.ask(f"{question.title}：{question.prompt}", password=hidden, console=console)

        try:
            answer = (await asyncio.to_thread(prompt)).strip()
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if not answer:
            raise NeedsPerson(f"{question.title}登录需要{NEEDS[question.need]}，终端没有输入 "
                              f"({question.portal}: no {question.need} was typed)", question.portal, question.need)
        return answer


class ConsoleHelp(LoginHelp):
    """The console's box on a run's page: :meth:`ask` waits (up to ``wait_seconds``) until
    :meth:`answer` is called for the run; :meth:`waiting` is what the page shows."""

    def __init__(self, wait_seconds: float = CONSOLE_WAIT_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        self.questions: dict[str, Question] = {}  # run id -> the question its login waits on

    def waiting(self, run_id: str) -> Question | None:
        """The question the run ``run_id`` waits on, if any."""
        q = self.questions.get(run_id)
        return q if q is not None and q.answered is not None and not q.answered.done() else None

    def answer(self, run_id: str, text: str) -> bool:
        """Hand ``text`` to the run waiting on a question; False when none waits."""
        q = self.waiting(run_id)
        if q is None or q.answered is None or not text.strip():
            return False
        q.answered.set_result(text.strip())
        return True

    async def ask(self, question: Question) -> str:
        question.answered = asyncio.get_running_loop().create_future()
        self.questions[question.run_id] = question
        try:
            return await asyncio.wait_for(asyncio.shield(question.answered), self.wait_seconds)
        except TimeoutError:
            raise NeedsPerson(
                f"{question.title}登录需要{NEEDS[question.need]}，{int(self.wait_seconds // 60)} 分钟内没有人在运行页面输入 "
                f"({question.portal}: nobody typed the {question.need} in time)", question.portal, question.need,
            ) from None
        finally:
            self.questions.pop(question.run_id, None)


async def ask_unless_stopped(help_: LoginHelp, question: Question, stop: asyncio.Event) -> str:
    """``help_``'s answer to ``question``, unless the run is asked to stop first (the console's
    停止, a shutdown): then the question is withdrawn (the box goes from the page) and nothing is
    typed.

    Raises:
        StopRequested: ``stop`` was set before an answer came (the run ends interrupted).
        NeedsPerson: nobody answered (see :meth:`LoginHelp.ask`).
    """
    asking = asyncio.ensure_future(help_.ask(question))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({asking, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not asking.done():
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        raise StopRequested(f"{question.title}登录等待输入时运行被停止，没有输入任何内容 "
                            f"({question.portal}: stopped while the login waited for a person)")
    return asking.result()


def for_run(trigger: str, given: LoginHelp | None) -> LoginHelp | None:
    """The help a run gets: ``given`` (the console's), else a terminal prompt for a run a person
    started on a terminal (``manual`` with stdin a TTY), else none (unattended)."""
    if given is not None:
        return given
    if trigger == "manual" and sys.stdin is not None and sys.stdin.isatty():
        return TerminalHelp()
    return None


Asker = Callable[[str, str, bytes | None], Awaitable[str]]  # (need, prompt, image) -> the answer
