from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ConsumeRequest")


@_attrs_define
class ConsumeRequest:
    """A consumption request (`POST …/credits/consume`).

    Attributes:
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        idempotency_key (str | Unset): Or the `Idempotency-Key` header (the same value if both are sent).
        description (None | str | Unset): Why, in the app's words (at most 500 characters): kept in the journal.
    """

    amount: str
    idempotency_key: str | Unset = UNSET
    description: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        idempotency_key = self.idempotency_key

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "amount": amount,
            }
        )
        if idempotency_key is not UNSET:
            field_dict["idempotency_key"] = idempotency_key
        if description is not UNSET:
            field_dict["description"] = description

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        idempotency_key = d.pop("idempotency_key", UNSET)

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        consume_request = cls(
            amount=amount,
            idempotency_key=idempotency_key,
            description=description,
        )

        return consume_request
