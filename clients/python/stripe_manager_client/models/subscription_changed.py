from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.scheduled_change import ScheduledChange


T = TypeVar("T", bound="SubscriptionChanged")


@_attrs_define
class SubscriptionChanged:
    """What a subscription action answers.

    Attributes:
        account (str): The account acted on.
        subscription (str): The subscription acted on (`sub_…`).
        status (str): Its status as Stripe answered after the action.
        cancel_at_period_end (bool): Whether it now ends at the end of the current period instead of renewing.
        price (None | str | Unset): Its (first) item's price after the action.
        cancel_at (int | None | Unset): When it ends (unix seconds), if cancellation is scheduled at a set time.
        current_period_end (int | None | Unset): End of the current billing period (unix seconds).
        quantity (int | None | Unset): Its (first) item's quantity after the action.
        scheduled_change (None | ScheduledChange | Unset):
    """

    account: str
    subscription: str
    status: str
    cancel_at_period_end: bool
    price: None | str | Unset = UNSET
    cancel_at: int | None | Unset = UNSET
    current_period_end: int | None | Unset = UNSET
    quantity: int | None | Unset = UNSET
    scheduled_change: None | ScheduledChange | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.scheduled_change import ScheduledChange  # noqa: PLC0415

        account = self.account

        subscription = self.subscription

        status = self.status

        cancel_at_period_end = self.cancel_at_period_end

        price: None | str | Unset
        if isinstance(self.price, Unset):
            price = UNSET
        else:
            price = self.price

        cancel_at: int | None | Unset
        if isinstance(self.cancel_at, Unset):
            cancel_at = UNSET
        else:
            cancel_at = self.cancel_at

        current_period_end: int | None | Unset
        if isinstance(self.current_period_end, Unset):
            current_period_end = UNSET
        else:
            current_period_end = self.current_period_end

        quantity: int | None | Unset
        if isinstance(self.quantity, Unset):
            quantity = UNSET
        else:
            quantity = self.quantity

        scheduled_change: dict[str, Any] | None | Unset
        if isinstance(self.scheduled_change, Unset):
            scheduled_change = UNSET
        elif isinstance(self.scheduled_change, ScheduledChange):
            scheduled_change = self.scheduled_change.to_dict()
        else:
            scheduled_change = self.scheduled_change

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "subscription": subscription,
                "status": status,
                "cancel_at_period_end": cancel_at_period_end,
            }
        )
        if price is not UNSET:
            field_dict["price"] = price
        if cancel_at is not UNSET:
            field_dict["cancel_at"] = cancel_at
        if current_period_end is not UNSET:
            field_dict["current_period_end"] = current_period_end
        if quantity is not UNSET:
            field_dict["quantity"] = quantity
        if scheduled_change is not UNSET:
            field_dict["scheduled_change"] = scheduled_change

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.scheduled_change import ScheduledChange  # noqa: PLC0415

        d = dict(src_dict)
        account = d.pop("account")

        subscription = d.pop("subscription")

        status = d.pop("status")

        cancel_at_period_end = d.pop("cancel_at_period_end")

        def _parse_price(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        price = _parse_price(d.pop("price", UNSET))

        def _parse_cancel_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cancel_at = _parse_cancel_at(d.pop("cancel_at", UNSET))

        def _parse_current_period_end(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        current_period_end = _parse_current_period_end(d.pop("current_period_end", UNSET))

        def _parse_quantity(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        quantity = _parse_quantity(d.pop("quantity", UNSET))

        def _parse_scheduled_change(data: object) -> None | ScheduledChange | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                scheduled_change_type_0 = ScheduledChange.from_dict(data)

                return scheduled_change_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ScheduledChange | Unset, data)

        scheduled_change = _parse_scheduled_change(d.pop("scheduled_change", UNSET))

        subscription_changed = cls(
            account=account,
            subscription=subscription,
            status=status,
            cancel_at_period_end=cancel_at_period_end,
            price=price,
            cancel_at=cancel_at,
            current_period_end=current_period_end,
            quantity=quantity,
            scheduled_change=scheduled_change,
        )

        subscription_changed.additional_properties = d
        return subscription_changed

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
