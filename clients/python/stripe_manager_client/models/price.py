from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Price")


@_attrs_define
class Price:
    """A price as the API shows it (CONTRACT.md).

    Attributes:
        id (str): Stripe's price id (`price_…`).
        product (str): The product it belongs to (`prod_…`).
        active (bool): Whether Stripe offers it for new purchases.
        deleted (bool): Deleted in Stripe: kept here so old payments still name it.
        currency (str): Lower-case ISO currency code (`usd`).
        amount_kind (str): `fixed`, `tiered` or `custom`.
        type_ (str): `one_time` or `recurring`.
        unit_amount (int | None | Unset): Minor units; `null` for tiered and customer-chosen prices.
        interval (None | str | Unset): For recurring prices: `day`, `week`, `month` or `year`.
        interval_count (int | None | Unset): For recurring prices: how many intervals one billing period spans.
        nickname (None | str | Unset): The price's nickname in Stripe (not shown to customers).
        lookup_key (None | str | Unset): The price's lookup key in Stripe, for apps that refer to prices by a stable
            name.
    """

    id: str
    product: str
    active: bool
    deleted: bool
    currency: str
    amount_kind: str
    type_: str
    unit_amount: int | None | Unset = UNSET
    interval: None | str | Unset = UNSET
    interval_count: int | None | Unset = UNSET
    nickname: None | str | Unset = UNSET
    lookup_key: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        product = self.product

        active = self.active

        deleted = self.deleted

        currency = self.currency

        amount_kind = self.amount_kind

        type_ = self.type_

        unit_amount: int | None | Unset
        if isinstance(self.unit_amount, Unset):
            unit_amount = UNSET
        else:
            unit_amount = self.unit_amount

        interval: None | str | Unset
        if isinstance(self.interval, Unset):
            interval = UNSET
        else:
            interval = self.interval

        interval_count: int | None | Unset
        if isinstance(self.interval_count, Unset):
            interval_count = UNSET
        else:
            interval_count = self.interval_count

        nickname: None | str | Unset
        if isinstance(self.nickname, Unset):
            nickname = UNSET
        else:
            nickname = self.nickname

        lookup_key: None | str | Unset
        if isinstance(self.lookup_key, Unset):
            lookup_key = UNSET
        else:
            lookup_key = self.lookup_key

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "product": product,
                "active": active,
                "deleted": deleted,
                "currency": currency,
                "amount_kind": amount_kind,
                "type": type_,
            }
        )
        if unit_amount is not UNSET:
            field_dict["unit_amount"] = unit_amount
        if interval is not UNSET:
            field_dict["interval"] = interval
        if interval_count is not UNSET:
            field_dict["interval_count"] = interval_count
        if nickname is not UNSET:
            field_dict["nickname"] = nickname
        if lookup_key is not UNSET:
            field_dict["lookup_key"] = lookup_key

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        product = d.pop("product")

        active = d.pop("active")

        deleted = d.pop("deleted")

        currency = d.pop("currency")

        amount_kind = d.pop("amount_kind")

        type_ = d.pop("type")

        def _parse_unit_amount(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        unit_amount = _parse_unit_amount(d.pop("unit_amount", UNSET))

        def _parse_interval(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        interval = _parse_interval(d.pop("interval", UNSET))

        def _parse_interval_count(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        interval_count = _parse_interval_count(d.pop("interval_count", UNSET))

        def _parse_nickname(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        nickname = _parse_nickname(d.pop("nickname", UNSET))

        def _parse_lookup_key(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        lookup_key = _parse_lookup_key(d.pop("lookup_key", UNSET))

        price = cls(
            id=id,
            product=product,
            active=active,
            deleted=deleted,
            currency=currency,
            amount_kind=amount_kind,
            type_=type_,
            unit_amount=unit_amount,
            interval=interval,
            interval_count=interval_count,
            nickname=nickname,
            lookup_key=lookup_key,
        )

        price.additional_properties = d
        return price

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
