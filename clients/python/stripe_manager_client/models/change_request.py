from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ChangeRequest")


@_attrs_define
class ChangeRequest:
    """`POST …/subscription/change`.

    Attributes:
        price (str): The new price (`price_…`): a recurring price of the catalog, sellable now.
        proration_behavior (None | str | Unset): With `when: "now"`: `always_invoice` (the default: the change is paid,
            and its
            credits granted, at once), `create_prorations` (billed with the next renewal,
            settled net then) or `none`. With `"period_end"`: absent or `none`.
        when (None | str | Unset): `now`, or `period_end` (a subscription schedule: nothing invoiced or taken now,
            the new price from the next period). Default: `now` for an upgrade (the new plan
            costs at least as much per unit of time), `period_end` for a downgrade.
        quantity (int | None | Unset): The new quantity; the subscription's own is kept when absent (Stripe would reset
            it to 1).
    """

    price: str
    proration_behavior: None | str | Unset = UNSET
    when: None | str | Unset = UNSET
    quantity: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        price = self.price

        proration_behavior: None | str | Unset
        if isinstance(self.proration_behavior, Unset):
            proration_behavior = UNSET
        else:
            proration_behavior = self.proration_behavior

        when: None | str | Unset
        if isinstance(self.when, Unset):
            when = UNSET
        else:
            when = self.when

        quantity: int | None | Unset
        if isinstance(self.quantity, Unset):
            quantity = UNSET
        else:
            quantity = self.quantity

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "price": price,
            }
        )
        if proration_behavior is not UNSET:
            field_dict["proration_behavior"] = proration_behavior
        if when is not UNSET:
            field_dict["when"] = when
        if quantity is not UNSET:
            field_dict["quantity"] = quantity

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        price = d.pop("price")

        def _parse_proration_behavior(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        proration_behavior = _parse_proration_behavior(d.pop("proration_behavior", UNSET))

        def _parse_when(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        when = _parse_when(d.pop("when", UNSET))

        def _parse_quantity(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        quantity = _parse_quantity(d.pop("quantity", UNSET))

        change_request = cls(
            price=price,
            proration_behavior=proration_behavior,
            when=when,
            quantity=quantity,
        )

        return change_request
