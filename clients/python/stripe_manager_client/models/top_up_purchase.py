from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="TopUpPurchase")


@_attrs_define
class TopUpPurchase:
    """One purchase.

    Attributes:
        id (str):
        account (str):
        day (str):
        status (str): `queued`, `paid`, `succeeded`, `failed` or `skipped`.
        price (str):
        quantity (int):
        spendable (int):
        attempts (int):
        next_attempt_at (int):
        created_at (int):
        updated_at (int):
        invoice (None | str | Unset):
        error (None | str | Unset):
    """

    id: str
    account: str
    day: str
    status: str
    price: str
    quantity: int
    spendable: int
    attempts: int
    next_attempt_at: int
    created_at: int
    updated_at: int
    invoice: None | str | Unset = UNSET
    error: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        account = self.account

        day = self.day

        status = self.status

        price = self.price

        quantity = self.quantity

        spendable = self.spendable

        attempts = self.attempts

        next_attempt_at = self.next_attempt_at

        created_at = self.created_at

        updated_at = self.updated_at

        invoice: None | str | Unset
        if isinstance(self.invoice, Unset):
            invoice = UNSET
        else:
            invoice = self.invoice

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "account": account,
                "day": day,
                "status": status,
                "price": price,
                "quantity": quantity,
                "spendable": spendable,
                "attempts": attempts,
                "next_attempt_at": next_attempt_at,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
        if invoice is not UNSET:
            field_dict["invoice"] = invoice
        if error is not UNSET:
            field_dict["error"] = error

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        account = d.pop("account")

        day = d.pop("day")

        status = d.pop("status")

        price = d.pop("price")

        quantity = d.pop("quantity")

        spendable = d.pop("spendable")

        attempts = d.pop("attempts")

        next_attempt_at = d.pop("next_attempt_at")

        created_at = d.pop("created_at")

        updated_at = d.pop("updated_at")

        def _parse_invoice(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        invoice = _parse_invoice(d.pop("invoice", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        top_up_purchase = cls(
            id=id,
            account=account,
            day=day,
            status=status,
            price=price,
            quantity=quantity,
            spendable=spendable,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            created_at=created_at,
            updated_at=updated_at,
            invoice=invoice,
            error=error,
        )

        top_up_purchase.additional_properties = d
        return top_up_purchase

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
