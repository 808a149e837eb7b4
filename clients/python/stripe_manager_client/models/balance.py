from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.lot import Lot


T = TypeVar("T", bound="Balance")


@_attrs_define
class Balance:
    """`GET /api/v1/accounts/{account}/credits`.

    Attributes:
        account (str): The account.
        available (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        subscription (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        pay_as_you_go (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        promotional (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        expired (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        debt (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for debits);
            requests take at most two places and no sign ("12", "1.5").
        held (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for debits);
            requests take at most two places and no sign ("12", "1.5").
        lots (list[Lot]): Every lot of the account, oldest first, expired and empty ones included.
        stripe_customer (None | str | Unset): The account's Stripe customer (`cus_…`), once it has one.
    """

    account: str
    available: str
    subscription: str
    pay_as_you_go: str
    promotional: str
    expired: str
    debt: str
    held: str
    lots: list[Lot]
    stripe_customer: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        available = self.available

        subscription = self.subscription

        pay_as_you_go = self.pay_as_you_go

        promotional = self.promotional

        expired = self.expired

        debt = self.debt

        held = self.held

        lots = []
        for lots_item_data in self.lots:
            lots_item = lots_item_data.to_dict()
            lots.append(lots_item)

        stripe_customer: None | str | Unset
        if isinstance(self.stripe_customer, Unset):
            stripe_customer = UNSET
        else:
            stripe_customer = self.stripe_customer

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "available": available,
                "subscription": subscription,
                "pay_as_you_go": pay_as_you_go,
                "promotional": promotional,
                "expired": expired,
                "debt": debt,
                "held": held,
                "lots": lots,
            }
        )
        if stripe_customer is not UNSET:
            field_dict["stripe_customer"] = stripe_customer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.lot import Lot  # noqa: PLC0415

        d = dict(src_dict)
        account = d.pop("account")

        available = d.pop("available")

        subscription = d.pop("subscription")

        pay_as_you_go = d.pop("pay_as_you_go")

        promotional = d.pop("promotional")

        expired = d.pop("expired")

        debt = d.pop("debt")

        held = d.pop("held")

        lots = []
        _lots = d.pop("lots")
        for lots_item_data in _lots:
            lots_item = Lot.from_dict(lots_item_data)

            lots.append(lots_item)

        def _parse_stripe_customer(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stripe_customer = _parse_stripe_customer(d.pop("stripe_customer", UNSET))

        balance = cls(
            account=account,
            available=available,
            subscription=subscription,
            pay_as_you_go=pay_as_you_go,
            promotional=promotional,
            expired=expired,
            debt=debt,
            held=held,
            lots=lots,
            stripe_customer=stripe_customer,
        )

        balance.additional_properties = d
        return balance

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
