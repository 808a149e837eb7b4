from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Hold")


@_attrs_define
class Hold:
    """A hold as the API shows it.

    Attributes:
        id (str): The hold's id (`hold_…`), for capture and release.
        account (str): The account it reserves credits of.
        idempotency_key (str): The key it was created under.
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        status (str): `held`, `captured`, `released` or `expired` (a hold past its `expires_at` is
            `expired` from that second on, whether or not the releaser has run yet).
        created_at (int): When it was created (unix seconds).
        expires_at (int): When it expires if neither captured nor released (unix seconds).
        replayed (bool): True when this answer is the stored result of an earlier request.
        captured (None | str | Unset):
        description (None | str | Unset): The description sent with it.
        settled_at (int | None | Unset): When it was captured, released or expired (unix seconds); `null` while held.
        balance (None | str | Unset):
    """

    id: str
    account: str
    idempotency_key: str
    amount: str
    status: str
    created_at: int
    expires_at: int
    replayed: bool
    captured: None | str | Unset = UNSET
    description: None | str | Unset = UNSET
    settled_at: int | None | Unset = UNSET
    balance: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        account = self.account

        idempotency_key = self.idempotency_key

        amount = self.amount

        status = self.status

        created_at = self.created_at

        expires_at = self.expires_at

        replayed = self.replayed

        captured: None | str | Unset
        if isinstance(self.captured, Unset):
            captured = UNSET
        else:
            captured = self.captured

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        settled_at: int | None | Unset
        if isinstance(self.settled_at, Unset):
            settled_at = UNSET
        else:
            settled_at = self.settled_at

        balance: None | str | Unset
        if isinstance(self.balance, Unset):
            balance = UNSET
        else:
            balance = self.balance

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "account": account,
                "idempotency_key": idempotency_key,
                "amount": amount,
                "status": status,
                "created_at": created_at,
                "expires_at": expires_at,
                "replayed": replayed,
            }
        )
        if captured is not UNSET:
            field_dict["captured"] = captured
        if description is not UNSET:
            field_dict["description"] = description
        if settled_at is not UNSET:
            field_dict["settled_at"] = settled_at
        if balance is not UNSET:
            field_dict["balance"] = balance

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        account = d.pop("account")

        idempotency_key = d.pop("idempotency_key")

        amount = d.pop("amount")

        status = d.pop("status")

        created_at = d.pop("created_at")

        expires_at = d.pop("expires_at")

        replayed = d.pop("replayed")

        def _parse_captured(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        captured = _parse_captured(d.pop("captured", UNSET))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_settled_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        settled_at = _parse_settled_at(d.pop("settled_at", UNSET))

        def _parse_balance(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        balance = _parse_balance(d.pop("balance", UNSET))

        hold = cls(
            id=id,
            account=account,
            idempotency_key=idempotency_key,
            amount=amount,
            status=status,
            created_at=created_at,
            expires_at=expires_at,
            replayed=replayed,
            captured=captured,
            description=description,
            settled_at=settled_at,
            balance=balance,
        )

        hold.additional_properties = d
        return hold

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
