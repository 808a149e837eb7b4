from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="PromotionalGrant")


@_attrs_define
class PromotionalGrant:
    """A promotional grant, as the API answers it (the same for a repeat, `replayed`).

    Attributes:
        account (str): The account granted.
        idempotency_key (str): The key the grant was made under.
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        lot (int): The lot the grant made.
        balance (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        created_at (int): When it was granted (unix seconds): the first request's time for a repeat.
        replayed (bool): True when this answers an earlier identical grant (nothing was granted again).
        expires_at (int | None | Unset): When they expire (unix seconds); `null` for never.
    """

    account: str
    idempotency_key: str
    amount: str
    lot: int
    balance: str
    created_at: int
    replayed: bool
    expires_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        idempotency_key = self.idempotency_key

        amount = self.amount

        lot = self.lot

        balance = self.balance

        created_at = self.created_at

        replayed = self.replayed

        expires_at: int | None | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "idempotency_key": idempotency_key,
                "amount": amount,
                "lot": lot,
                "balance": balance,
                "created_at": created_at,
                "replayed": replayed,
            }
        )
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account = d.pop("account")

        idempotency_key = d.pop("idempotency_key")

        amount = d.pop("amount")

        lot = d.pop("lot")

        balance = d.pop("balance")

        created_at = d.pop("created_at")

        replayed = d.pop("replayed")

        def _parse_expires_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        promotional_grant = cls(
            account=account,
            idempotency_key=idempotency_key,
            amount=amount,
            lot=lot,
            balance=balance,
            created_at=created_at,
            replayed=replayed,
            expires_at=expires_at,
        )

        promotional_grant.additional_properties = d
        return promotional_grant

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
