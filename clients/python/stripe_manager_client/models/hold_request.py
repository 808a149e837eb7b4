from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="HoldRequest")


@_attrs_define
class HoldRequest:
    """`POST /api/v1/accounts/{account}/credits/holds`.

    Attributes:
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        idempotency_key (str | Unset): The same key with the same body answers the first hold; with another, `409`.
            Or the `Idempotency-Key` header (the same value if both are sent).
        ttl_seconds (int | None | Unset): 1 to 86,400; 900 when absent.
        description (None | str | Unset): Why, in the app's words (at most 500 characters): kept with the hold and its
            capture.
    """

    amount: str
    idempotency_key: str | Unset = UNSET
    ttl_seconds: int | None | Unset = UNSET
    description: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        idempotency_key = self.idempotency_key

        ttl_seconds: int | None | Unset
        if isinstance(self.ttl_seconds, Unset):
            ttl_seconds = UNSET
        else:
            ttl_seconds = self.ttl_seconds

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
        if ttl_seconds is not UNSET:
            field_dict["ttl_seconds"] = ttl_seconds
        if description is not UNSET:
            field_dict["description"] = description

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        idempotency_key = d.pop("idempotency_key", UNSET)

        def _parse_ttl_seconds(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ttl_seconds = _parse_ttl_seconds(d.pop("ttl_seconds", UNSET))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        hold_request = cls(
            amount=amount,
            idempotency_key=idempotency_key,
            ttl_seconds=ttl_seconds,
            description=description,
        )

        return hold_request
