"""The data dictionary staff keep: OEM codes -> DMS codes, and which OEM field fills which DMS
field, read from ``dictionary.yaml`` in the project folder (see the file's own comments and
the README's "Data dictionary" section).

Loading validates everything and names the file and line of the first problem. A code that the
dictionary lacks is never guessed: :meth:`Dictionary.lookup` returns None and the caller
rejects the record ("unmapped model code X").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dealerbot.data.records import DMS_CONTRACT, DMS_CUSTOMER, OEM_CUSTOMER, OEM_ORDER, Kind
from dealerbot.errors import DataFileError
from dealerbot.resources import shipped_dir
from dealerbot.yamlfile import Lines, as_text, key_as_text, load_yaml

DEFAULT_FILE = "dictionary.yaml"
TABLES = ("models", "colors", "statuses", "followup_results")
TABLE_TEXT = {"models": "车型代码", "colors": "颜色", "statuses": "订单状态", "followup_results": "跟进结果"}
Update = Literal["sync", "fill_empty", "forward", "never"]
# The DMS form fields the re-key bot types from the dictionary: the record types' fields but what
# the DMS assigns itself (numbers, times) and what customer matching decides (customer_no).
_NOT_TYPED = {"contract_no", "customer_no", "customer_name", "updated_at", "created_at"}
CONTRACT_FIELDS = tuple(f for f in DMS_CONTRACT.field_names if f not in _NOT_TYPED)
CUSTOMER_FIELDS = tuple(f for f in DMS_CUSTOMER.field_names if f not in _NOT_TYPED)
SOURCES = {"order": OEM_ORDER, "customer": OEM_CUSTOMER}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """Where one DMS field's value comes from, and how a later OEM change reaches the DMS.

    ``update``: ``sync`` (an OEM change is written unless the DMS was changed too: then it is
    a conflict), ``fill_empty`` (written only into an empty DMS field), ``forward`` (a status
    only moves forward along ``status_order``) or ``never`` (set when the contract is created).
    """

    source: str | None = Field(default=None, alias="from")
    value: str | None = None
    map: Literal["models", "colors", "statuses"] | None = None
    update: Update = "sync"

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        if v is None:
            return v
        side, _, name = v.partition(".")
        entity = SOURCES.get(side)
        if entity is None or name not in entity.field_names:
            choices = ", ".join(f"{s}.{f}" for s, e in SOURCES.items() for f in e.field_names)
            raise ValueError(f"'from: {v}' names no OEM field; use one of {choices}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        if (self.source is None) == (self.value is None):
            raise ValueError("give exactly one of 'from' (an OEM field) or 'value' (a fixed value)")
        return self


class _DictionaryFile(_Strict):
    version: Literal[1] = 1
    models: dict[str, str]
    colors: dict[str, str]
    statuses: dict[str, str]
    followup_results: dict[str, str] = {}  # DMS 跟进结果 -> the OEM's 回访结果 (the leads flow's follow-ups)
    status_order: list[str]
    cancelled_status: str
    contract: dict[str, FieldRule]
    customer: dict[str, FieldRule]

    @field_validator("models", "colors", "statuses", "followup_results", mode="before")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k).strip(): str(val).strip() for k, val in v.items()}
        return v

    @field_validator("contract")
    @classmethod
    def _contract(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        unknown = sorted(set(v) - set(CONTRACT_FIELDS))
        if unknown:
            raise ValueError(f"unknown DMS contract field(s) {unknown}; the form has {', '.join(CONTRACT_FIELDS)}")
        missing = [f for f in CONTRACT_FIELDS if f not in v]
        if missing:
            raise ValueError(f"no rule for the DMS contract field(s) {missing}")
        return v

    @field_validator("customer")
    @classmethod
    def _customer(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        unknown = sorted(set(v) - set(CUSTOMER_FIELDS))
        missing = [f for f in CUSTOMER_FIELDS if f not in v]
        if unknown or missing:
            raise ValueError(f"the DMS customer form needs exactly {', '.join(CUSTOMER_FIELDS)} "
                             f"(unknown: {unknown or 'none'}; missing: {missing or 'none'})")
        return v



@dataclass(frozen=True)
class Dictionary:
    """A loaded, valid data dictionary."""

    path: Path
    models: dict[str, str]
    colors: dict[str, str]
    statuses: dict[str, str]
    status_order: tuple[str, ...]
    cancelled_status: str
    contract: dict[str, FieldRule]
    customer: dict[str, FieldRule]
    # A DMS follow-up's result words (跟进结果) -> the OEM's 回访结果 (its fixed list); the
    # followups flow rejects a word missing here.
    followup_results: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, str]:
        """One of the code tables: ``models``, ``colors``, ``statuses`` or ``followup_results``."""
        return {"models": self.models, "colors": self.colors, "statuses": self.statuses,
                "followup_results": self.followup_results}[name]

    def lookup(self, name: str, code: str) -> str | None:
        """The DMS value of an OEM ``code`` in table ``name``, or None when the code is unmapped."""
        return self.table(name).get(code.strip())

    @property
    def dms_statuses(self) -> tuple[str, ...]:
        """Every DMS status the dictionary knows: the lifecycle, then the cancelled one."""
        return (*self.status_order, self.cancelled_status)

    def fields_from(self, side: str) -> set[str]:
        """The OEM fields of ``side`` (``order`` or ``customer``) the mapping reads."""
        rules = [*self.contract.values(), *self.customer.values()]
        return {r.source.split(".", 1)[1] for r in rules if r.source and r.source.startswith(side + ".")}


def load_dictionary(path: Path, overlay: Path | None = None) -> Dictionary:
    """Load and validate ``path``; a group's store adds its own entries from ``overlay`` (a
    file with ``models``, ``colors`` and ``statuses`` only), which win over the shared ones.

    Raises:
        DataFileError: missing, not YAML, or invalid (the message names file and line).
    """
    if not path.is_file():
        raise DataFileError(
            f"{path}: the data dictionary is missing; copy {shipped_dir() / DEFAULT_FILE} (dealerbot's own) "
            f"and map your OEM codes to your DMS codes (see the README, 'Data dictionary')"
        )
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise DataFileError(f"{lines.where(())}: the dictionary must be a mapping (models, colors, statuses, ...)")
    data = _text_tables(data, lines)
    if isinstance(data.get("version"), bool):
        raise DataFileError(f"{lines.where(('version',))}: version: must be 1")
    if overlay is not None:
        data, lines = _overlay(data, overlay, lines)
    try:
        parsed = _DictionaryFile.model_validate(data)
    except ValidationError as exc:
        raise DataFileError(_describe(exc, lines)) from None
    lifecycle = set(parsed.status_order)
    for oem, dms in parsed.statuses.items():
        if dms != parsed.cancelled_status and dms not in lifecycle:
            raise DataFileError(f"{lines.where(('statuses', oem))}: statuses: {oem} -> {dms}: '{dms}' is in neither "
                                f"status_order nor cancelled_status")
    if parsed.contract["status"].map != "statuses":
        raise DataFileError(f"{lines.where(('contract', 'status'))}: contract.status must have 'map: statuses'")
    return Dictionary(
        path=path, models=parsed.models, colors=parsed.colors, statuses=parsed.statuses,
        status_order=tuple(parsed.status_order), cancelled_status=parsed.cancelled_status,
        contract=parsed.contract, customer=parsed.customer, followup_results=parsed.followup_results,
    )


class _Overlaid(Lines):
    """Lines of a dictionary with a store's entries laid over it: an entry from the store's file
    is named by that file's line, the rest by the shared file's."""

    def __init__(self, base: Lines, store: Lines, keys: set[tuple[str, str]]) -> None:
        super().__init__(base.file, base.lines)
        self.store, self.keys = store, keys

    def where(self, path: Any) -> str:
        path = tuple(path)
        return self.store.where(path) if tuple(str(p) for p in path[:2]) in self.keys else super().where(path)


def _overlay(data: dict[str, Any], path: Path, base: Lines) -> tuple[dict[str, Any], Lines]:
    """``data`` with a store's own entries from ``path`` laid over its tables, and lines that
    name the file each entry came from.

    Raises:
        DataFileError: the overlay is missing or holds anything but the three tables' entries.
    """
    if not path.is_file():
        raise DataFileError(f"{path}: this store's dictionary file is missing ([stores.<code>] dictionary)")
    extra, lines = load_yaml(path)
    if extra is None:
        return data, base
    if not isinstance(extra, dict):
        raise DataFileError(f"{lines.where(())}: a store's dictionary holds {', '.join(TABLES)} only")
    merged = dict(data)
    for table, codes in extra.items():
        if table == "version":
            continue
        if table not in TABLES or not isinstance(codes, dict):
            raise DataFileError(f"{lines.where((table,))}: a store's dictionary holds {', '.join(TABLES)} only "
                                f"(the rest is the group's, in the shared dictionary)")
        merged[table] = {**(data.get(table) or {}), **_text_tables({table: codes}, lines)[table]}
    keys = {(str(t), str(c)) for t, codes in extra.items() if t in TABLES for c in codes}
    return merged, _Overlaid(base, lines, keys)


def _text_tables(data: dict[str, Any], lines: Lines) -> dict[str, Any]:
    """``data`` with each code table's codes and values as the text written in the file.

    Raises:
        DataFileError: (naming file and line) a code without a DMS value, or a code or value that
            is no text: a list or mapping (``[DMS-GX7L, x]``), or read by YAML otherwise than
            written (``true``, ``0123``).
    """
    out = dict(data)
    for table in TABLES:
        codes = data.get(table)
        if not isinstance(codes, dict):
            continue  # not a mapping: the model's validation names it
        texts: dict[str, str] = {}
        for code, value in codes.items():
            where = (table, code)
            name = key_as_text(code, where, lines, table)
            if value is None or (isinstance(value, str) and value.strip() == ""):
                raise DataFileError(f"{lines.where(where)}: {table}: '{name}' has no DMS value")
            texts[name] = as_text(value, where, lines, f"{table}: '{name}'")
        out[table] = texts
    return out


def _describe(exc: ValidationError, lines: Lines) -> str:
    out = []
    for err in sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden"):  # a typo first
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        key = ".".join(str(p) for p in loc) or "(top)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{lines.where(loc)}: {key}: {msg}")
    return "\n".join(out)


def dms_kind(field: str) -> Kind:
    """The kind of a DMS contract field (``decimal``, ``date`` or ``text``)."""
    for f in DMS_CONTRACT.fields:
        if f.name == field:
            return f.kind
    return "text"
