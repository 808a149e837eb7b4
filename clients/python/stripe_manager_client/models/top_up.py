from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.top_up_purchase import TopUpPurchase


T = TypeVar("T", bound="TopUp")


@_attrs_define
class TopUp:
    """What `GET …/top-up` shows.

    Attributes:
        account (str): The account.
        enabled (bool): Whether purchases are made; false after the service turned it off (see
            `disabled_reason`).
        below (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for debits);
            requests take at most two places and no sign ("12", "1.5").
        price (str): The pack's price (`price_…`).
        quantity (int): Packs bought each time.
        max_per_day (int): Purchases per UTC day at most.
        updated_at (int): When the setting last changed (unix seconds).
        recent (list[TopUpPurchase]): The latest purchases, newest first.
        disabled_reason (None | str | Unset): Why the service turned it off (a card that needs authentication).
    """

    account: str
    enabled: bool
    below: str
    price: str
    quantity: int
    max_per_day: int
    updated_at: int
    recent: list[TopUpPurchase]
    disabled_reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        enabled = self.enabled

        below = self.below

        price = self.price

        quantity = self.quantity

        max_per_day = self.max_per_day

        updated_at = self.updated_at

        recent = []
        for recent_item_data in self.recent:
            recent_item = recent_item_data.to_dict()
            recent.append(recent_item)

        disabled_reason: None | str | Unset
        if isinstance(self.disabled_reason, Unset):
            disabled_reason = UNSET
        else:
            disabled_reason = self.disabled_reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "enabled": enabled,
                "below": below,
                "price": price,
                "quantity": quantity,
                "max_per_day": max_per_day,
                "updated_at": updated_at,
                "recent": recent,
            }
        )
        if disabled_reason is not UNSET:
            field_dict["disabled_reason"] = disabled_reason

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.top_up_purchase import TopUpPurchase  # noqa: PLC0415

        d = dict(src_dict)
        account = d.pop("account")

        enabled = d.pop("enabled")

        below = d.pop("below")

        price = d.pop("price")

        quantity = d.pop("quantity")

        max_per_day = d.pop("max_per_day")

        updated_at = d.pop("updated_at")

        recent = []
        _recent = d.pop("recent")
        for recent_item_data in _recent:
            recent_item = TopUpPurchase.from_dict(recent_item_data)

            recent.append(recent_item)

        def _parse_disabled_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        disabled_reason = _parse_disabled_reason(d.pop("disabled_reason", UNSET))

        top_up = cls(
            account=account,
            enabled=enabled,
            below=below,
            price=price,
            quantity=quantity,
            max_per_day=max_per_day,
            updated_at=updated_at,
            recent=recent,
            disabled_reason=disabled_reason,
        )

        top_up.additional_properties = d
        return top_up

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
