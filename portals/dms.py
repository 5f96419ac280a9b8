"""Page objects of the dealership's DMS (经销商管理系统)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlparse

from dealerbot.api import (
    DMS_CONTRACT,
    DMS_CUSTOMER,
    DMS_DELIVERY,
    DMS_FOLLOWUP,
    DMS_PROSPECT,
    LOGIN_SELECTORS,
    Form,
    PageChanged,
    PagedTable,
    PortalApp,
    PortalSession,
    RecordRejected,
    SubmitOutcome,
    Submitted,
    dms_values,
    paged_table_selectors,
)

# Every selector and endpoint name these page objects use (checked when the DMS is opened).
SELECTORS_USED = (
    *LOGIN_SELECTORS, "login.username", *paged_table_selectors("customers"), *paged_table_selectors("contracts"),
    "login", "landing", "customers_page", "contracts_page",
)
# The names the 交车记录 reader needs besides SELECTORS_USED (required by the bots that read it,
# so a selector file of before the deliveries screen still serves the other bots).
DELIVERY_SELECTORS = (*paged_table_selectors("deliveries"), "deliveries_page")
# ... and the names the 潜客 readers need, and what creating a prospect needs on top.
PROSPECT_SELECTORS = (*paged_table_selectors("prospects"), *paged_table_selectors("prospect_followups"), "prospects_page",
                      "prospect_followups_page")
PROSPECT_FORM = {f: f"prospect_form.{f}" for f in ("name", "mobile", "oem_lead_no")}  # typed; model and source chosen
PROSPECT_WRITE_SELECTORS = (*PROSPECT_FORM.values(), "prospect_form.form", "prospect_form.model_code", "prospect_form.source",
                            "prospect_form.save", "form.field_error", "prospect_new")
CUSTOMER_FIELDS = tuple(DMS_CUSTOMER.field_names)  # the customers list's columns, in order
CONTRACT_FIELDS = tuple(DMS_CONTRACT.field_names)  # the contracts list's columns, in order
DELIVERY_FIELDS = tuple(DMS_DELIVERY.field_names)  # the deliveries list's columns, in order
PROSPECT_FIELDS = tuple(DMS_PROSPECT.field_names)  # the prospects list's columns, in order
FOLLOWUP_FIELDS = tuple(DMS_FOLLOWUP.field_names)  # the follow-ups list's columns, in order

class DmsApp(PortalApp):
    """The DMS as a whole: logging in (user name, password)."""

    name = "dms"


def customers_screen(session: PortalSession) -> PagedTable:
    """客户管理."""
    return PagedTable(session, "customers", "customers_page", CUSTOMER_FIELDS)


def contracts_screen(session: PortalSession) -> PagedTable:
    """销售合同."""
    return PagedTable(session, "contracts", "contracts_page", CONTRACT_FIELDS)


def deliveries_screen(session: PortalSession) -> PagedTable:
    """交车记录: each delivery recorded on a contract, with the buyer as the DMS has them (the
    contract's customer) and the data-sharing consent signed at handover."""
    return PagedTable(session, "deliveries", "deliveries_page", DELIVERY_FIELDS)


def prospects_screen(session: PortalSession) -> PagedTable:
    """潜客管理: prospects, with the OEM lead each came from (``oem_lead_no``, when one did)."""
    return PagedTable(session, "prospects", "prospects_page", PROSPECT_FIELDS)


def prospect_followups_screen(session: PortalSession) -> PagedTable:
    """跟进记录: the follow-ups sales staff entered, with their prospect's OEM lead no, name and
    mobile; ``result`` in the DMS's own words (they differ from the OEM portal's 回访结果)."""
    return PagedTable(session, "prospect_followups", "prospect_followups_page", FOLLOWUP_FIELDS)


class ProspectForm:
    """新建潜客: name, mobile, model (the DMS's codes), source, the OEM lead no."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.form = Form(session)
        self.prospects = prospects_screen(session)

    async def find_prospect(self, oem_lead_no: str) -> list[dict[str, str]]:
        """The prospects made from the OEM lead ``oem_lead_no`` (exactly; the search matches parts).

        Raises:
            PageChanged: the list is not as the selectors say.
            SystemFailure: see :meth:`PortalSession.fetch`.
        """
        wanted = oem_lead_no.strip().upper()
        rows, _ = await self.prospects.fetch(1, wanted, patient=False)
        return [r for r in rows if r["oem_lead_no"].strip().upper() == wanted]

    async def create_prospect(self, values: dict[str, str], dry_run: bool = False) -> Submitted:
        """Create one prospect: ``name``, ``mobile``, ``model_code`` (a DMS code), ``source`` (its
        text, e.g. 厂家线索), ``oem_lead_no``; 保存 once. ``saved`` with the new prospect no as
        ``key``; ``refused`` with the DMS's words; never retried (an ``unknown`` one is looked for
        with :meth:`find_prospect` first).

        Raises:
            PageChanged: a named element is missing.
            RecordRejected: the model or source is not one of the form's choices.
        """
        await self.s.goto("prospect_new")
        await self.s.loc.get("prospect_form.form")
        await self.form.fill({PROSPECT_FORM[f]: str(v) for f, v in values.items() if f in PROSPECT_FORM and v})
        await self.form.choose("prospect_form.model_code", value=values.get("model_code", ""))
        await self.form.choose("prospect_form.source", text=values.get("source", ""))
        if dry_run:
            return Submitted("rehearsed")
        outcome = await self.form.submit("prospect_form.save", errors="form.field_error")
        if outcome.result == "saved":
            return Submitted("saved", _query_param(outcome.url))
        if outcome.result == "refused":
            return Submitted("refused", message="；".join(outcome.errors.values()) or outcome.detail)
        return Submitted("unknown", message=outcome.detail)


# -- writing: the contract and customer forms -------------------------------------------------

CONTRACT_FORM = {f: f"contract_form.{f}" for f in (
    "model_code", "color", "vin", "price", "deposit", "delivery_date", "oem_order_no", "status")}
CUSTOMER_FORM = {f: f"customer_form.{f}" for f in ("name", "mobile", "id_number", "address")}
# The names writing needs besides SELECTORS_USED (checked when a writing bot opens the DMS).
WRITE_SELECTORS = (
    *CONTRACT_FORM.values(), *CUSTOMER_FORM.values(), "contract_form.form", "contract_form.customer_pick",
    "contract_form.customer_no", "contract_form.save", "contract_form.confirm_ok", "contract_form.confirm_cancel",
    "customer_dialog.query", "customer_dialog.search", "customer_dialog.pick", "customer_dialog.empty", "customer_form.form",
    "customer_form.save", "form.field_error", "contract_new", "contract_edit", "customer_new", "customers_api",
)


# Forms opened on one page before a fresh one: a page keeps what it loaded in the renderer and in
# Playwright's driver until it closes (bench/rekey.py, 500 contracts: 40 forms a page peaked at
# 630 MB, 10 at 600 MB, 5 at 585 MB, at the same speed).
PAGE_LIFETIME = 5


def _query_param(url: str, name: str = "q") -> str:
    values = parse_qs(urlparse(url).query).get(name)
    return values[0] if values else ""


class ContractForm:
    """新建合同 / 编辑合同: the form, its customer pop-up and its 确认保存? dialog."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.form = Form(session)

    async def open_new(self) -> None:
        """Show an empty contract form."""
        await self.s.goto("contract_new")
        await self.s.loc.get("contract_form.form")

    async def open_edit(self, contract_no: str) -> None:
        """Show a contract's form.

        Raises:
            PageChanged: no such contract (404) or no form.
        """
        await self.s.goto("contract_edit", contract_no=contract_no)
        await self.s.loc.get("contract_form.form")

    async def pick_customer(self, customer_no: str) -> None:
        """Choose the customer through the 选择客户 pop-up, as a clerk does.

        Raises:
            RecordRejected: the pop-up found no such customer (a business failure of this record).
            PageChanged: the pop-up showed neither the customer nor "none found", or did not fill the form.
            SystemFailure: inside :meth:`Form.watch_requests <dealerbot.web.forms.Form.watch_requests>`,
                the pop-up's search (its own request) failed: at once, not after the timeout.
        """
        await self.form.click("contract_form.customer_pick", settled=False)
        await self.form.fill({"customer_dialog.query": customer_no})
        await self.form.press("customer_dialog.query", "Enter")  # searches, as the 搜索 button does
        shown = await self.form.first_of("customer_dialog.pick", "customer_dialog.empty", customer_no=customer_no)
        if shown == "customer_dialog.empty":  # deleted or merged in the DMS since it was planned
            raise RecordRejected("dms_customer_missing",
                                 f"DMS的选择客户中查不到客户 {customer_no}（可能已被删除或合并），请核对后重新审核")
        await self.form.click("customer_dialog.pick", settled=False, customer_no=customer_no)
        chosen = (await self.form.read({"no": "contract_form.customer_no"}))["no"]
        if chosen != customer_no:
            raise PageChanged(f"dms: the customer pop-up chose {chosen!r}, not {customer_no}")

    async def fill(self, values: dict[str, str]) -> None:
        """Type the contract fields (form text by field name)."""
        await self.form.fill({CONTRACT_FORM[f]: v for f, v in values.items()})

    async def save(self) -> SubmitOutcome:
        """保存, then 确定 in the confirm dialog; what the DMS answered (never retried)."""
        return await self.form.submit("contract_form.save", confirm="contract_form.confirm_ok", errors="form.field_error")

    async def rehearse(self) -> None:
        """保存, then 取消 in the confirm dialog: everything but the save (a dry run)."""
        await self.form.click("contract_form.save")
        await self.form.click("contract_form.confirm_cancel")


class CustomerForm:
    """新增客户."""

    def __init__(self, session: PortalSession) -> None:
        self.s = session
        self.form = Form(session)

    async def open_new(self) -> None:
        await self.s.goto("customer_new")
        await self.s.loc.get("customer_form.form")

    async def fill(self, values: dict[str, str]) -> None:
        await self.form.fill({CUSTOMER_FORM[f]: v for f, v in values.items()})

    async def save(self) -> SubmitOutcome:
        return await self.form.submit("customer_form.save", errors="form.field_error")


class WebDms:
    """The re-key engine's view of the web DMS (:class:`dealerbot.rekey.writer.DmsWriter`): searches
    and read-backs through the logged-in session, writes through the forms, on this session's
    page. Steps that only read or open a screen are retried (and log in again on expiry);
    a submit never is. While a form is open, the page's own requests are watched
    (:meth:`Form.watch_requests <dealerbot.web.forms.Form.watch_requests>`): when one fails (the
    选择客户 pop-up's search answered 500), writing the record fails at once with a retryable
    :class:`SystemFailure`, before anything is submitted, and the re-key engine writes it again
    (searching the DMS first)."""

    def __init__(
        self, session: PortalSession, capture: Callable[[str], Awaitable[str | None]], page_lifetime: int = PAGE_LIFETIME,
    ) -> None:
        self.s = session
        self.contracts = contracts_screen(session)
        self.customers = customers_screen(session)
        self.contract_form = ContractForm(session)
        self.customer_form = CustomerForm(session)
        self._capture = capture
        self._page_lifetime = page_lifetime
        self._forms_opened = 0

    @contextlib.asynccontextmanager
    async def _open(self, what: str, form: Form, step: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """Open the form screen ``what`` (retried, logging in again on expiry), on a fresh page now
        and then, and watch the page's own requests until the block ends.

        Raises:
            SystemFailure: the screen did not open, or one of the page's requests failed.
        """
        self._forms_opened += 1
        if self._page_lifetime and self._forms_opened % self._page_lifetime == 0:
            await self.s.fresh_page()
        with form.watch_requests(f"in {what}"):
            await self.s.step(f"open {what}", step)
            yield

    async def find_contracts(self, oem_order_no: str) -> list[dict[str, str]]:
        rows, _ = await self.contracts.fetch(1, oem_order_no, patient=False)
        return [r for r in rows if r["oem_order_no"].strip().upper() == oem_order_no.strip().upper()]

    async def read_contract(self, contract_no: str) -> dict[str, str] | None:
        rows, _ = await self.contracts.fetch(1, contract_no, patient=False)
        for r in rows:
            if r["contract_no"] == contract_no:
                return {**dms_values(r), "customer_no": r["customer_no"], "contract_no": contract_no}
        return None

    async def find_customer(self, id_number: str) -> str | None:
        rows = await self.s.fetch_json("customers_api", {"q": id_number})
        found = [r["customer_no"] for r in rows if str(r.get("id_number", "")).upper() == id_number.upper()]
        return found[0] if len(found) == 1 else None

    async def read_customer(self, customer_no: str) -> dict[str, str] | None:
        rows, _ = await self.customers.fetch(1, customer_no, patient=False)
        for r in rows:
            if r["customer_no"] == customer_no:
                return {f: r[f] for f in CUSTOMER_FORM}
        return None

    async def create_customer(self, values: dict[str, str], dry_run: bool) -> Submitted:
        form = self.customer_form
        async with self._open("the new-customer form", form.form, form.open_new):
            await form.fill(values)
            if dry_run:
                return Submitted("rehearsed")
            outcome = await form.save()
        return self._result(outcome)

    async def create_contract(self, customer_no: str | None, values: dict[str, str], dry_run: bool) -> Submitted:
        form = self.contract_form
        async with self._open("the new-contract form", form.form, form.open_new):
            if customer_no:
                await form.pick_customer(customer_no)
            await form.fill(values)
            if dry_run:
                await form.rehearse()
                return Submitted("rehearsed")
            outcome = await form.save()
        return self._result(outcome)

    async def update_contract(self, contract_no: str, changes: dict[str, str], dry_run: bool) -> Submitted:
        form = self.contract_form
        async with self._open(f"the form of contract {contract_no}", form.form, lambda: form.open_edit(contract_no)):
            await form.fill(changes)
            if dry_run:
                await form.rehearse()
                return Submitted("rehearsed")
            outcome = await form.save()
        return self._result(outcome, contract_no)

    def _result(self, outcome: SubmitOutcome, key: str = "") -> Submitted:
        if outcome.result == "saved":
            return Submitted("saved", key or _query_param(outcome.url))
        if outcome.result == "refused":
            return Submitted("refused", message=outcome.message)
        if self.s.is_login_url(outcome.url):
            return Submitted("unknown", message="session expired during the save")
        return Submitted("unknown", message=outcome.detail)

    async def evidence(self, label: str) -> str | None:
        return await self._capture(label)
