"""What each kind of failure means to an operator, and what to do about it, in plain Chinese.

One entry per error class of :mod:`dealerbot.errors` (a unit test fails when a class has none):
what happened (``title``), the suggested action (``action``, 建议操作), and which button the
console offers for it (``fix``). The run's own technical message stays available, folded below.
The console's run and home pages and the messages all read this table: one home for the words.

Imports nothing of dealerbot's at run time: the CLI and the notifier use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Fix = Literal["rerun", "password", "wait", "integrator", "dictionary", "administrator", "login", "rejects", "none"]


@dataclass(frozen=True)
class Advice:
    """A failure explained: ``title`` (what happened), ``action`` (建议操作) and ``fix`` (the
    console's button for it: ``rerun`` 重新运行, ``password`` 设置密码, ``wait`` (nothing now),
    ``integrator``/``administrator`` (call someone), ``dictionary`` (edit the dictionary))."""

    title: str
    action: str
    fix: Fix


_INTEGRATOR = "门户的页面改版了，dealerbot 找不到要操作的内容。本次没有写入任何数据。请联系实施人员（集成商）更新页面配置后再运行。"

ADVICE: dict[str, Advice] = {
    "AlreadyRunning": Advice("同一个机器人已在运行", "等它运行结束后再看结果，不需要重新启动。", "wait"),
    "NeedsPerson": Advice("门户登录需要人工", "门户要求输入短信验证码、图形验证码或修改密码，dealerbot 不会代为猜测。"
                          "请打开本次运行的页面，按提示完成登录，运行会从那里继续。", "login"),
    "PortalChanged": Advice("门户页面改版，已停止写入", "写入前检查发现门户页面与配置不符（缺少的项目见详情），本次没有写入任何数据。"
                            "请联系实施人员（集成商），缺少的项目见详情（若设置了集成商通知，他们也已收到）；更新页面配置后再运行。", "integrator"),
    "StopRequested": Advice("运行被停止", "已处理的记录都已保存。需要时点击“重新运行”，会从未完成的记录继续。", "rerun"),
    "ConfigError": Advice("配置有误", "本次没有写入任何数据。请联系管理员检查 dealerbot.toml 配置。", "administrator"),
    "SelectorFileError": Advice("页面配置文件有误", "本次没有写入任何数据。请联系实施人员（集成商）修正 selectors 目录中的配置文件。",
                                "integrator"),
    "RollbackRefused": Advice("无法回滚这次运行", "没有计划任何回滚，也没有写入任何数据。请按错误详情检查运行编号（只有写入DMS的运行能回滚，且只能回滚一次）。",
                              "administrator"),
    "DataFileError": Advice("数据文件有误", "本次没有写入任何数据。请管理员按错误详情中指出的文件和行修正后重新运行。", "administrator"),
    "CalendarUnknown": Advice("缺少该年度的节假日安排", "请管理员在 schedules 目录中补充该年度的节假日与调休安排。", "administrator"),
    "UnknownSelector": Advice("页面配置缺少一项", _INTEGRATOR, "integrator"),
    "UnknownBot": Advice("没有这个机器人", "请联系管理员检查定时任务或机器人名称。", "administrator"),
    "BrowserNotFound": Advice("找不到浏览器", "本机没有可用的 Chrome、Edge 或 Chromium。请联系管理员安装浏览器后重新运行。", "administrator"),
    "CredentialsMissing": Advice("还没有保存门户密码", "请在“状态”页为该门户设置密码，然后重新运行。", "password"),
    "LoginRejected": Advice("门户拒绝了密码", "密码错误或账号被锁定。为防止账号被锁，dealerbot 不会再用这个密码登录。"
                            "请在门户确认新密码后，在“状态”页设置新密码，然后重新运行。", "password"),
    "SystemFailure": Advice("门户或网络出错", "多半是暂时的。请稍后点击“重新运行”；已保存的记录不会重复写入。", "rerun"),
    "PortalUnavailable": Advice("门户暂时无法访问", "门户服务器出错或连不上，多半是暂时的。请过几分钟后点击“重新运行”。", "rerun"),
    "PortalMaintenance": Advice("门户正在维护", "维护结束后会自动重新运行，也可以在维护结束后点击“重新运行”。", "wait"),
    "CircuitOpen": Advice("门户连续出错", "门户连续多次出错，dealerbot 已暂停访问以免加重负担。请半小时后点击“重新运行”；"
                          "若一直如此，请联系厂家或 DMS 服务商。", "rerun"),
    "RateLimited": Advice("门户要求放慢访问", "访问太频繁被门户限制了。请过一会儿再点击“重新运行”。", "rerun"),
    "SessionExpired": Advice("门户登录已过期", "请点击“重新运行”，会重新登录。", "rerun"),
    "PageChanged": Advice("门户页面改版", _INTEGRATOR, "integrator"),
    "StepTimeout": Advice("门户响应太慢", "门户在规定时间内没有响应，多半是暂时的。请稍后点击“重新运行”。", "rerun"),
    "UnknownOutcome": Advice("DMS 没有明确答复是否保存", "下次运行会先在 DMS 中查找这条记录，找不到才会再录入，不会重复。"
                             "请点击“重新运行”。", "rerun"),
    "BrowserCrashed": Advice("浏览器意外关闭", "可能是电脑内存不足或浏览器被关闭。请关闭不用的程序后点击“重新运行”。", "rerun"),
    "internal": Advice("dealerbot 内部错误", "请点击“重新运行”；若再次出现，请把本页的技术详情发给实施人员。", "rerun"),
}

ALL_REJECTED = Advice("读取的记录全部被拒绝", "没有一条记录可以处理。请打开审核工作簿的“无法处理”表查看每条的原因"
                      "（常见的是字典缺少代码或来源数据格式不对），改正后再同步。", "rejects")
INTERRUPTED = Advice("运行被中断", "已处理的记录都已保存。需要时点击“重新运行”，会从未完成的记录继续。", "rerun")
# A reading bot has no 未完成的记录 to go on from: a rerun reads again.
INTERRUPTED_READ = Advice("运行被中断", "已读取的记录都已保存。需要时点击“重新运行”，会重新读取。", "rerun")


def explain(error_class: str | None, status: str, resume_after: datetime | None = None,
            scheduled: bool = True, writes: bool = True) -> Advice | None:
    """The advice for a run that ended ``status`` with ``error_class`` (see
    :attr:`dealerbot.store.RunRecord.error_class`); None for a run that needs nothing done.

    A postponed run names the time it may run again: by itself when the timetable started it
    (``scheduled``), else when the operator starts it again. A failure of a class this table
    does not know (a store written by a newer dealerbot) gets the general advice for its status.
    An interrupted run of a bot that only reads (not ``writes``) is read again, not continued.
    """
    if status == "interrupted":
        return INTERRUPTED if writes else INTERRUPTED_READ
    if status == "postponed":
        if not scheduled:
            until = f"预计到 {resume_after:%H:%M} 结束" if resume_after is not None else "结束"
            return Advice("门户正在维护", f"维护{until}后，请点击“重新运行”（这次是手动启动的，不会自动重新运行）。", "rerun")
        if resume_after is None:
            return ADVICE["PortalMaintenance"]
        return Advice("门户正在维护", f"维护预计到 {resume_after:%H:%M} 结束，届时会自动重新运行。", "wait")
    if status == "needs_person":
        return ADVICE["NeedsPerson"]
    if status == "portal_changed":
        return ADVICE["PortalChanged"]
    if status == "all_rejected":
        return ALL_REJECTED
    if status != "failed":
        return None
    return ADVICE.get(error_class or "", ADVICE["internal"] if error_class else ADVICE["SystemFailure"])


@dataclass(frozen=True)
class RejectAdvice:
    """A rejected record explained: ``title`` (what kind of problem) and ``action`` (建议操作).
    A reject is a business outcome of one record, never a failure of the run."""

    title: str
    action: str


_FIX_AT_SOURCE = "请在厂家门户中更正该记录，下次同步会重新读取。"
_DMS = "请在DMS中核对该记录后重新审核；已保存的记录不会重复写入。"

# The reject codes of the pipeline steps (dealerbot.data), the mapping through the dictionary,
# the exactly-once writes and the re-key writer.
REJECT_ADVICE: dict[str, RejectAdvice] = {
    "unmapped_models": RejectAdvice("字典缺少车型代码", "请管理员在 dictionary.yaml 的 models 中补充该车型代码，下次同步会自动处理。"),
    "unmapped": RejectAdvice("字典缺少代码", "请管理员在 dictionary.yaml 中补充该代码，下次同步会自动处理。"),
    "dms_model": RejectAdvice("不是DMS的车型代码", "请管理员检查 dictionary.yaml 的 models 中该车型对应的DMS代码。"),
    "required": RejectAdvice("缺少必填内容", _FIX_AT_SOURCE),
    "bad_key": RejectAdvice("编号格式不正确", _FIX_AT_SOURCE),
    "bad_value": RejectAdvice("内容无法识别", _FIX_AT_SOURCE),
    "vin_length": RejectAdvice("VIN位数不对", _FIX_AT_SOURCE),
    "vin_chars": RejectAdvice("VIN含非法字符", _FIX_AT_SOURCE),
    "vin_check_digit": RejectAdvice("VIN校验位错误", _FIX_AT_SOURCE),
    "id_length": RejectAdvice("证件号码格式错误", _FIX_AT_SOURCE),
    "id_check_code": RejectAdvice("身份证校验码错误", _FIX_AT_SOURCE),
    "id_birthdate": RejectAdvice("身份证出生日期无效", _FIX_AT_SOURCE),
    "no_oem_customer": RejectAdvice("缺少厂家客户资料", "先运行 oem-customers（一键同步会自动运行），再同步一次。"),
    "customer_undecided": RejectAdvice("客户尚未确定", "请在审核工作簿中为该订单选择客户后重新上传。"),
    "customer_read_back_mismatch": RejectAdvice("新建客户核对不一致", "请在DMS中更正该客户后重新审核。"),
    "dms_refused": RejectAdvice("DMS拒绝保存", _DMS),
    "dms_refused_customer": RejectAdvice("DMS拒绝新建客户", _DMS),
    "submit_refused": RejectAdvice("门户拒绝保存", "请按原因更正该记录后重新运行。"),
    "submit_unknown": RejectAdvice("门户没有明确答复", "下次运行会先查找该记录，找不到才会再录入，不会重复。"),
    "not_found_after_save": RejectAdvice("保存后查不到该记录", "请在门户中核对该记录是否已保存；不会自动重新录入。"),
}
_OTHER_REJECT = RejectAdvice("记录有问题", "请按原因更正该记录；其他记录照常处理。")


def explain_reject(code: str) -> RejectAdvice:
    """What a reject ``code`` means and what to do about it (``unmapped_<table>`` of any
    dictionary table; a code this table does not know gets general advice, never an error)."""
    if code in REJECT_ADVICE:
        return REJECT_ADVICE[code]
    if code.startswith("unmapped_"):
        return REJECT_ADVICE["unmapped"]
    if code.startswith("vin_"):
        return REJECT_ADVICE["vin_check_digit"]
    if code.startswith("id_"):
        return REJECT_ADVICE["id_length"]
    return _OTHER_REJECT
