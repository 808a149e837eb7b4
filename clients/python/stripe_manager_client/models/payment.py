from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Payment")


@_attrs_define
class Payment:
    """One payment in an account's history.

    Attributes:
        kind (str): `invoice` or `checkout`.
        id (str):
        created (int):
        refunded (int): Money refunded (minor units) by refunds the ledger has seen for this payment.
        status (None | str | Unset): An invoice's status (`open`, `paid`, `void`, `uncollectible`), or a checkout's
            payment status (`paid`, `unpaid`, `no_payment_required`, `failed`).
        amount (int | None | Unset): Minor units of `currency`: an invoice's total, a checkout's amount paid.
        amount_paid (int | None | Unset):
        currency (None | str | Unset):
        url (None | str | Unset): Stripe's hosted invoice page (invoices), or the receipt of a checkout's charge
            (once `charge.*` events or `sync --objects charges` mirrored it).
        pdf (None | str | Unset):
    """

    kind: str
    id: str
    created: int
    refunded: int
    status: None | str | Unset = UNSET
    amount: int | None | Unset = UNSET
    amount_paid: int | None | Unset = UNSET
    currency: None | str | Unset = UNSET
    url: None | str | Unset = UNSET
    pdf: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        kind = self.kind

        id = self.id

        created = self.created

        refunded = self.refunded

        status: None | str | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        amount: int | None | Unset
        if isinstance(self.amount, Unset):
            amount = UNSET
        else:
            amount = self.amount

        amount_paid: int | None | Unset
        if isinstance(self.amount_paid, Unset):
            amount_paid = UNSET
        else:
            amount_paid = self.amount_paid

        currency: None | str | Unset
        if isinstance(self.currency, Unset):
            currency = UNSET
        else:
            currency = self.currency

        url: None | str | Unset
        if isinstance(self.url, Unset):
            url = UNSET
        else:
            url = self.url

        pdf: None | str | Unset
        if isinstance(self.pdf, Unset):
            pdf = UNSET
        else:
            pdf = self.pdf

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "kind": kind,
                "id": id,
                "created": created,
                "refunded": refunded,
            }
        )
        if status is not UNSET:
            field_dict["status"] = status
        if amount is not UNSET:
            field_dict["amount"] = amount
        if amount_paid is not UNSET:
            field_dict["amount_paid"] = amount_paid
        if currency is not UNSET:
            field_dict["currency"] = currency
        if url is not UNSET:
            field_dict["url"] = url
        if pdf is not UNSET:
            field_dict["pdf"] = pdf

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kind = d.pop("kind")

        id = d.pop("id")

        created = d.pop("created")

        refunded = d.pop("refunded")

        def _parse_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        def _parse_amount(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        amount = _parse_amount(d.pop("amount", UNSET))

        def _parse_amount_paid(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        amount_paid = _parse_amount_paid(d.pop("amount_paid", UNSET))

        def _parse_currency(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        currency = _parse_currency(d.pop("currency", UNSET))

        def _parse_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        url = _parse_url(d.pop("url", UNSET))

        def _parse_pdf(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        pdf = _parse_pdf(d.pop("pdf", UNSET))

        payment = cls(
            kind=kind,
            id=id,
            created=created,
            refunded=refunded,
            status=status,
            amount=amount,
            amount_paid=amount_paid,
            currency=currency,
            url=url,
            pdf=pdf,
        )

        payment.additional_properties = d
        return payment

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
