from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Lot")


@_attrs_define
class Lot:
    """A lot as the API shows it.

    Attributes:
        id (int): The lot's id (journal entries name it).
        source (str): Where the credits came from: `purchase`, `subscription`, `admin` or `promotional`.
        source_ref (str): What granted it, unique per lot: a Checkout session (`cs_…`), an invoice (`in_…`),
            `admin:<uuid>`, or a reference made from a promotional grant's or an import's key.
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        remaining (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        expired (bool): Whether it had expired when this was read: its `remaining` no longer counts.
        created_at (int): When it was granted (unix seconds).
        expires_at (int | None | Unset): When its remaining credits expire (unix seconds); `null` for never. A
            subscription's
            lot expires with the period it pays for.
        product (None | str | Unset): The product bought, for purchase and subscription lots.
        price (None | str | Unset): The price bought, for purchase and subscription lots.
    """

    id: int
    source: str
    source_ref: str
    amount: str
    remaining: str
    expired: bool
    created_at: int
    expires_at: int | None | Unset = UNSET
    product: None | str | Unset = UNSET
    price: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        source = self.source

        source_ref = self.source_ref

        amount = self.amount

        remaining = self.remaining

        expired = self.expired

        created_at = self.created_at

        expires_at: int | None | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

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

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "source": source,
                "source_ref": source_ref,
                "amount": amount,
                "remaining": remaining,
                "expired": expired,
                "created_at": created_at,
            }
        )
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if product is not UNSET:
            field_dict["product"] = product
        if price is not UNSET:
            field_dict["price"] = price

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        source = d.pop("source")

        source_ref = d.pop("source_ref")

        amount = d.pop("amount")

        remaining = d.pop("remaining")

        expired = d.pop("expired")

        created_at = d.pop("created_at")

        def _parse_expires_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

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

        lot = cls(
            id=id,
            source=source,
            source_ref=source_ref,
            amount=amount,
            remaining=remaining,
            expired=expired,
            created_at=created_at,
            expires_at=expires_at,
            product=product,
            price=price,
        )

        lot.additional_properties = d
        return lot

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
