from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Consumption")


@_attrs_define
class Consumption:
    """The answer to a consumption; a repeat with the same key gets the same one.

    Attributes:
        account (str): The account charged.
        idempotency_key (str): The key the consumption was made under.
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        balance (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        created_at (int): When it was made (unix seconds): the first request's time for a replay.
        replayed (bool): True when this answer is the stored result of an earlier identical request.
        description (None | str | Unset): The description sent with it.
    """

    account: str
    idempotency_key: str
    amount: str
    balance: str
    created_at: int
    replayed: bool
    description: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        idempotency_key = self.idempotency_key

        amount = self.amount

        balance = self.balance

        created_at = self.created_at

        replayed = self.replayed

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "idempotency_key": idempotency_key,
                "amount": amount,
                "balance": balance,
                "created_at": created_at,
                "replayed": replayed,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account = d.pop("account")

        idempotency_key = d.pop("idempotency_key")

        amount = d.pop("amount")

        balance = d.pop("balance")

        created_at = d.pop("created_at")

        replayed = d.pop("replayed")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        consumption = cls(
            account=account,
            idempotency_key=idempotency_key,
            amount=amount,
            balance=balance,
            created_at=created_at,
            replayed=replayed,
            description=description,
        )

        consumption.additional_properties = d
        return consumption

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
