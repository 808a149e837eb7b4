from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TopUpRequest")


@_attrs_define
class TopUpRequest:
    """`PUT /api/v1/accounts/{account}/top-up`.

    Attributes:
        below (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for debits);
            requests take at most two places and no sign ("12", "1.5").
        price (str): The pack's price: one-time, active, of a product with a valid `credit_amount`.
        quantity (int | Unset): Packs bought each time (1 to 100; default 1).
        max_per_day (int | Unset): Purchases per UTC day at most (1 to 100; default 1); one over it is recorded
            `skipped`.
    """

    below: str
    price: str
    quantity: int | Unset = UNSET
    max_per_day: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        below = self.below

        price = self.price

        quantity = self.quantity

        max_per_day = self.max_per_day

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "below": below,
                "price": price,
            }
        )
        if quantity is not UNSET:
            field_dict["quantity"] = quantity
        if max_per_day is not UNSET:
            field_dict["max_per_day"] = max_per_day

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        below = d.pop("below")

        price = d.pop("price")

        quantity = d.pop("quantity", UNSET)

        max_per_day = d.pop("max_per_day", UNSET)

        top_up_request = cls(
            below=below,
            price=price,
            quantity=quantity,
            max_per_day=max_per_day,
        )

        return top_up_request
