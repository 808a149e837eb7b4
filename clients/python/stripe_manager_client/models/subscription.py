from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.scheduled_change import ScheduledChange


T = TypeVar("T", bound="Subscription")


@_attrs_define
class Subscription:
    """One subscription as the account endpoint shows it.

    Attributes:
        id (str): Stripe's subscription id (`sub_…`).
        status (str): Stripe's status (`active`, `trialing`, `past_due`, `canceled`, …).
        cancel_at_period_end (bool): Whether it ends at the end of the current period instead of renewing.
        product (None | str | Unset): The product of its (first) item.
        price (None | str | Unset): The price of its (first) item.
        quantity (int | None | Unset): The item's quantity (seats).
        current_period_start (int | None | Unset): Start of the current billing period (unix seconds).
        current_period_end (int | None | Unset): End of the current billing period (unix seconds): the next renewal.
        cancel_at (int | None | Unset): When it ends, if cancellation is scheduled (`cancel_at`).
        canceled_at (int | None | Unset): When it was canceled (unix seconds), if it was.
        trial_end (int | None | Unset): When the trial ends (unix seconds), while there is one.
        scheduled_change (None | ScheduledChange | Unset):
        pause_collection (Any | Unset): Stripe's `pause_collection` while set (`{"behavior","resumes_at"}`): the
            subscription stays `active` in Stripe but collects nothing, so it does not entitle.
    """

    id: str
    status: str
    cancel_at_period_end: bool
    product: None | str | Unset = UNSET
    price: None | str | Unset = UNSET
    quantity: int | None | Unset = UNSET
    current_period_start: int | None | Unset = UNSET
    current_period_end: int | None | Unset = UNSET
    cancel_at: int | None | Unset = UNSET
    canceled_at: int | None | Unset = UNSET
    trial_end: int | None | Unset = UNSET
    scheduled_change: None | ScheduledChange | Unset = UNSET
    pause_collection: Any | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.scheduled_change import ScheduledChange  # noqa: PLC0415

        id = self.id

        status = self.status

        cancel_at_period_end = self.cancel_at_period_end

        product: None | str | Unset
        if isinstance(self.product, Unset):
            product = UNSET
        else:
            product = self.product

        price: None | str | Unset
        if isinstance(self.price, Unset):
            price = UNSET
        else:
            price = self.price

        quantity: int | None | Unset
        if isinstance(self.quantity, Unset):
            quantity = UNSET
        else:
            quantity = self.quantity

        current_period_start: int | None | Unset
        if isinstance(self.current_period_start, Unset):
            current_period_start = UNSET
        else:
            current_period_start = self.current_period_start

        current_period_end: int | None | Unset
        if isinstance(self.current_period_end, Unset):
            current_period_end = UNSET
        else:
            current_period_end = self.current_period_end

        cancel_at: int | None | Unset
        if isinstance(self.cancel_at, Unset):
            cancel_at = UNSET
        else:
            cancel_at = self.cancel_at

        canceled_at: int | None | Unset
        if isinstance(self.canceled_at, Unset):
            canceled_at = UNSET
        else:
            canceled_at = self.canceled_at

        trial_end: int | None | Unset
        if isinstance(self.trial_end, Unset):
            trial_end = UNSET
        else:
            trial_end = self.trial_end

        scheduled_change: dict[str, Any] | None | Unset
        if isinstance(self.scheduled_change, Unset):
            scheduled_change = UNSET
        elif isinstance(self.scheduled_change, ScheduledChange):
            scheduled_change = self.scheduled_change.to_dict()
        else:
            scheduled_change = self.scheduled_change

        pause_collection = self.pause_collection

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "status": status,
                "cancel_at_period_end": cancel_at_period_end,
            }
        )
        if product is not UNSET:
            field_dict["product"] = product
        if price is not UNSET:
            field_dict["price"] = price
        if quantity is not UNSET:
            field_dict["quantity"] = quantity
        if current_period_start is not UNSET:
            field_dict["current_period_start"] = current_period_start
        if current_period_end is not UNSET:
            field_dict["current_period_end"] = current_period_end
        if cancel_at is not UNSET:
            field_dict["cancel_at"] = cancel_at
        if canceled_at is not UNSET:
            field_dict["canceled_at"] = canceled_at
        if trial_end is not UNSET:
            field_dict["trial_end"] = trial_end
        if scheduled_change is not UNSET:
            field_dict["scheduled_change"] = scheduled_change
        if pause_collection is not UNSET:
            field_dict["pause_collection"] = pause_collection

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.scheduled_change import ScheduledChange  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        status = d.pop("status")

        cancel_at_period_end = d.pop("cancel_at_period_end")

        def _parse_product(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        product = _parse_product(d.pop("product", UNSET))

        def _parse_price(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        price = _parse_price(d.pop("price", UNSET))

        def _parse_quantity(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        quantity = _parse_quantity(d.pop("quantity", UNSET))

        def _parse_current_period_start(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        current_period_start = _parse_current_period_start(d.pop("current_period_start", UNSET))

        def _parse_current_period_end(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        current_period_end = _parse_current_period_end(d.pop("current_period_end", UNSET))

        def _parse_cancel_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cancel_at = _parse_cancel_at(d.pop("cancel_at", UNSET))

        def _parse_canceled_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        canceled_at = _parse_canceled_at(d.pop("canceled_at", UNSET))

        def _parse_trial_end(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        trial_end = _parse_trial_end(d.pop("trial_end", UNSET))

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

        pause_collection = d.pop("pause_collection", UNSET)

        subscription = cls(
            id=id,
            status=status,
            cancel_at_period_end=cancel_at_period_end,
            product=product,
            price=price,
            quantity=quantity,
            current_period_start=current_period_start,
            current_period_end=current_period_end,
            cancel_at=cancel_at,
            canceled_at=canceled_at,
            trial_end=trial_end,
            scheduled_change=scheduled_change,
            pause_collection=pause_collection,
        )

        subscription.additional_properties = d
        return subscription

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
