from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Entitlement")


@_attrs_define
class Entitlement:
    """What the account may do.

    Attributes:
        active (bool): Whether the account is entitled now: a subscription `active` or `trialing`, or
            `past_due` within the grace period, and not with its payment collection paused.
        status (str): The status that decided it (`active`, `trialing`, `past_due`, …), `none` without
            a subscription.
        subscription (None | str | Unset): The subscription that decided it.
        product (None | str | Unset): The product of that subscription.
        grace_until (int | None | Unset): For `past_due`: until when it still counts as active.
    """

    active: bool
    status: str
    subscription: None | str | Unset = UNSET
    product: None | str | Unset = UNSET
    grace_until: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        active = self.active

        status = self.status

        subscription: None | str | Unset
        if isinstance(self.subscription, Unset):
            subscription = UNSET
        else:
            subscription = self.subscription

        product: None | str | Unset
        if isinstance(self.product, Unset):
            product = UNSET
        else:
            product = self.product

        grace_until: int | None | Unset
        if isinstance(self.grace_until, Unset):
            grace_until = UNSET
        else:
            grace_until = self.grace_until

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "active": active,
                "status": status,
            }
        )
        if subscription is not UNSET:
            field_dict["subscription"] = subscription
        if product is not UNSET:
            field_dict["product"] = product
        if grace_until is not UNSET:
            field_dict["grace_until"] = grace_until

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        active = d.pop("active")

        status = d.pop("status")

        def _parse_subscription(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        subscription = _parse_subscription(d.pop("subscription", UNSET))

        def _parse_product(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        product = _parse_product(d.pop("product", UNSET))

        def _parse_grace_until(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        grace_until = _parse_grace_until(d.pop("grace_until", UNSET))

        entitlement = cls(
            active=active,
            status=status,
            subscription=subscription,
            product=product,
            grace_until=grace_until,
        )

        entitlement.additional_properties = d
        return entitlement

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
