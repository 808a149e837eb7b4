from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CheckoutCreated")


@_attrs_define
class CheckoutCreated:
    """`POST /api/v1/checkout`'s answer: the Stripe Checkout session to send the customer to.

    Attributes:
        id (str): Stripe's Checkout session id (`cs_…`).
        mode (str): `payment` (one-time price) or `subscription` (recurring price).
        account (str): The account it is for.
        product (str): The product bought.
        price (str): The price bought.
        quantity (int): Units bought.
        url (None | str | Unset): The session's hosted page: redirect the customer there.
    """

    id: str
    mode: str
    account: str
    product: str
    price: str
    quantity: int
    url: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        mode = self.mode

        account = self.account

        product = self.product

        price = self.price

        quantity = self.quantity

        url: None | str | Unset
        if isinstance(self.url, Unset):
            url = UNSET
        else:
            url = self.url

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "mode": mode,
                "account": account,
                "product": product,
                "price": price,
                "quantity": quantity,
            }
        )
        if url is not UNSET:
            field_dict["url"] = url

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        mode = d.pop("mode")

        account = d.pop("account")

        product = d.pop("product")

        price = d.pop("price")

        quantity = d.pop("quantity")

        def _parse_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        url = _parse_url(d.pop("url", UNSET))

        checkout_created = cls(
            id=id,
            mode=mode,
            account=account,
            product=product,
            price=price,
            quantity=quantity,
            url=url,
        )

        checkout_created.additional_properties = d
        return checkout_created

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
