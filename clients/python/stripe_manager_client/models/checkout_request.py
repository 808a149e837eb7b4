from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CheckoutRequest")


@_attrs_define
class CheckoutRequest:
    """`POST /api/v1/checkout`.

    Attributes:
        account (str): The app's account the purchase is for (its credits, entitlement and customer).
        price (str): The price to buy (`price_…`): one of a sellable product of the catalog.
        success_url (str): Where Stripe sends the customer after paying (http or https).
        cancel_url (str): Where Stripe sends the customer who leaves the checkout (http or https).
        quantity (int | Unset): Units to buy (1 to 1000; default 1): packs, or seats for a plan.
        trial_period_days (int | None | Unset): A free trial before the first charge, for a plan (Stripe's
            `subscription_data[trial_period_days]`, 1 to 730 days). The account is entitled
            while `trialing`; credits come with the first paid invoice.
        save_payment_method (bool | Unset): For a pack: save the card for payments the customer is not present for (an
            automatic top-up). Stripe's `payment_intent_data[setup_future_usage]=off_session`:
            "Checkout will attach the payment method to the Customer"
            (stripe@18.0.0 `Checkout/SessionsResource.d.ts`). A plan's card is kept by its
            subscription anyway.
    """

    account: str
    price: str
    success_url: str
    cancel_url: str
    quantity: int | Unset = UNSET
    trial_period_days: int | None | Unset = UNSET
    save_payment_method: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        price = self.price

        success_url = self.success_url

        cancel_url = self.cancel_url

        quantity = self.quantity

        trial_period_days: int | None | Unset
        if isinstance(self.trial_period_days, Unset):
            trial_period_days = UNSET
        else:
            trial_period_days = self.trial_period_days

        save_payment_method = self.save_payment_method

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "account": account,
                "price": price,
                "success_url": success_url,
                "cancel_url": cancel_url,
            }
        )
        if quantity is not UNSET:
            field_dict["quantity"] = quantity
        if trial_period_days is not UNSET:
            field_dict["trial_period_days"] = trial_period_days
        if save_payment_method is not UNSET:
            field_dict["save_payment_method"] = save_payment_method

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account = d.pop("account")

        price = d.pop("price")

        success_url = d.pop("success_url")

        cancel_url = d.pop("cancel_url")

        quantity = d.pop("quantity", UNSET)

        def _parse_trial_period_days(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        trial_period_days = _parse_trial_period_days(d.pop("trial_period_days", UNSET))

        save_payment_method = d.pop("save_payment_method", UNSET)

        checkout_request = cls(
            account=account,
            price=price,
            success_url=success_url,
            cancel_url=cancel_url,
            quantity=quantity,
            trial_period_days=trial_period_days,
            save_payment_method=save_payment_method,
        )

        return checkout_request
