from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.balance import Balance
    from ..models.customer import Customer
    from ..models.entitled_feature import EntitledFeature
    from ..models.entitlement import Entitlement
    from ..models.subscription import Subscription


T = TypeVar("T", bound="Account")


@_attrs_define
class Account:
    """`GET /api/v1/accounts/{account}`.

    Attributes:
        account (str): The account id, as the app names it.
        subscriptions (list[Subscription]): Every subscription of the account's customers, as mirrored.
        entitlement (Entitlement): What the account may do.
        features (list[EntitledFeature]): The features Stripe says the account's customer is entitled to now (its active
            entitlements), by lookup key.
        credits_ (Balance): `GET /api/v1/accounts/{account}/credits`.
        customer (Customer | None | Unset):
    """

    account: str
    subscriptions: list[Subscription]
    entitlement: Entitlement
    features: list[EntitledFeature]
    credits_: Balance
    customer: Customer | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.customer import Customer  # noqa: PLC0415

        account = self.account

        subscriptions = []
        for subscriptions_item_data in self.subscriptions:
            subscriptions_item = subscriptions_item_data.to_dict()
            subscriptions.append(subscriptions_item)

        entitlement = self.entitlement.to_dict()

        features = []
        for features_item_data in self.features:
            features_item = features_item_data.to_dict()
            features.append(features_item)

        credits_ = self.credits_.to_dict()

        customer: dict[str, Any] | None | Unset
        if isinstance(self.customer, Unset):
            customer = UNSET
        elif isinstance(self.customer, Customer):
            customer = self.customer.to_dict()
        else:
            customer = self.customer

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "subscriptions": subscriptions,
                "entitlement": entitlement,
                "features": features,
                "credits": credits_,
            }
        )
        if customer is not UNSET:
            field_dict["customer"] = customer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.balance import Balance  # noqa: PLC0415
        from ..models.customer import Customer  # noqa: PLC0415
        from ..models.entitled_feature import EntitledFeature  # noqa: PLC0415
        from ..models.entitlement import Entitlement  # noqa: PLC0415
        from ..models.subscription import Subscription  # noqa: PLC0415

        d = dict(src_dict)
        account = d.pop("account")

        subscriptions = []
        _subscriptions = d.pop("subscriptions")
        for subscriptions_item_data in _subscriptions:
            subscriptions_item = Subscription.from_dict(subscriptions_item_data)

            subscriptions.append(subscriptions_item)

        entitlement = Entitlement.from_dict(d.pop("entitlement"))

        features = []
        _features = d.pop("features")
        for features_item_data in _features:
            features_item = EntitledFeature.from_dict(features_item_data)

            features.append(features_item)

        credits_ = Balance.from_dict(d.pop("credits"))

        def _parse_customer(data: object) -> Customer | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                customer_type_0 = Customer.from_dict(data)

                return customer_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Customer | None | Unset, data)

        customer = _parse_customer(d.pop("customer", UNSET))

        account = cls(
            account=account,
            subscriptions=subscriptions,
            entitlement=entitlement,
            features=features,
            credits_=credits_,
            customer=customer,
        )

        account.additional_properties = d
        return account

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
