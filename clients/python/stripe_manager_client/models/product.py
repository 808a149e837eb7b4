from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.price import Price
    from ..models.price_per_credit import PricePerCredit
    from ..models.product_metadata import ProductMetadata


T = TypeVar("T", bound="Product")


@_attrs_define
class Product:
    """A product as the API shows it (CONTRACT.md).

    Attributes:
        id (str): Stripe's product id (`prod_…`).
        name (str): The product's name in Stripe.
        active (bool): Whether Stripe offers it for new purchases.
        deleted (bool): Deleted in Stripe: kept here so old payments and lots still name it.
        credit_type (str): From metadata, else derived from the default price.
        valid (bool): Whether its metadata is valid; an invalid product is listed but not sold.
        sellable (bool): Valid, active and not deleted: the only products offered for checkout.
        prices (list[Price]): Every price of the product, inactive and deleted ones included.
        metadata (ProductMetadata): The product's metadata in Stripe, as is.
        stripe_updated (int): Stripe's last change to the product (its `updated`, unix seconds).
        synced_at (int): When this copy was last written from Stripe (unix seconds).
        description (None | str | Unset): The product's description in Stripe.
        credit_amount (int | None | Unset): Credits one unit grants (metadata `credit_amount`); `null` when missing or
            invalid.
        display_order (int | None | Unset): Where the product sorts in listings (metadata `display_order`, lowest
            first).
        validation_error (None | str | Unset): Why the metadata is invalid, when it is not valid.
        default_price (None | Price | Unset):
        price_per_credit (None | PricePerCredit | Unset):
    """

    id: str
    name: str
    active: bool
    deleted: bool
    credit_type: str
    valid: bool
    sellable: bool
    prices: list[Price]
    metadata: ProductMetadata
    stripe_updated: int
    synced_at: int
    description: None | str | Unset = UNSET
    credit_amount: int | None | Unset = UNSET
    display_order: int | None | Unset = UNSET
    validation_error: None | str | Unset = UNSET
    default_price: None | Price | Unset = UNSET
    price_per_credit: None | PricePerCredit | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.price import Price  # noqa: PLC0415
        from ..models.price_per_credit import PricePerCredit  # noqa: PLC0415

        id = self.id

        name = self.name

        active = self.active

        deleted = self.deleted

        credit_type = self.credit_type

        valid = self.valid

        sellable = self.sellable

        prices = []
        for prices_item_data in self.prices:
            prices_item = prices_item_data.to_dict()
            prices.append(prices_item)

        metadata = self.metadata.to_dict()

        stripe_updated = self.stripe_updated

        synced_at = self.synced_at

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        credit_amount: int | None | Unset
        if isinstance(self.credit_amount, Unset):
            credit_amount = UNSET
        else:
            credit_amount = self.credit_amount

        display_order: int | None | Unset
        if isinstance(self.display_order, Unset):
            display_order = UNSET
        else:
            display_order = self.display_order

        validation_error: None | str | Unset
        if isinstance(self.validation_error, Unset):
            validation_error = UNSET
        else:
            validation_error = self.validation_error

        default_price: dict[str, Any] | None | Unset
        if isinstance(self.default_price, Unset):
            default_price = UNSET
        elif isinstance(self.default_price, Price):
            default_price = self.default_price.to_dict()
        else:
            default_price = self.default_price

        price_per_credit: dict[str, Any] | None | Unset
        if isinstance(self.price_per_credit, Unset):
            price_per_credit = UNSET
        elif isinstance(self.price_per_credit, PricePerCredit):
            price_per_credit = self.price_per_credit.to_dict()
        else:
            price_per_credit = self.price_per_credit

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "name": name,
                "active": active,
                "deleted": deleted,
                "credit_type": credit_type,
                "valid": valid,
                "sellable": sellable,
                "prices": prices,
                "metadata": metadata,
                "stripe_updated": stripe_updated,
                "synced_at": synced_at,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if credit_amount is not UNSET:
            field_dict["credit_amount"] = credit_amount
        if display_order is not UNSET:
            field_dict["display_order"] = display_order
        if validation_error is not UNSET:
            field_dict["validation_error"] = validation_error
        if default_price is not UNSET:
            field_dict["default_price"] = default_price
        if price_per_credit is not UNSET:
            field_dict["price_per_credit"] = price_per_credit

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.price import Price  # noqa: PLC0415
        from ..models.price_per_credit import PricePerCredit  # noqa: PLC0415
        from ..models.product_metadata import ProductMetadata  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        active = d.pop("active")

        deleted = d.pop("deleted")

        credit_type = d.pop("credit_type")

        valid = d.pop("valid")

        sellable = d.pop("sellable")

        prices = []
        _prices = d.pop("prices")
        for prices_item_data in _prices:
            prices_item = Price.from_dict(prices_item_data)

            prices.append(prices_item)

        metadata = ProductMetadata.from_dict(d.pop("metadata"))

        stripe_updated = d.pop("stripe_updated")

        synced_at = d.pop("synced_at")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_credit_amount(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        credit_amount = _parse_credit_amount(d.pop("credit_amount", UNSET))

        def _parse_display_order(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        display_order = _parse_display_order(d.pop("display_order", UNSET))

        def _parse_validation_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        validation_error = _parse_validation_error(d.pop("validation_error", UNSET))

        def _parse_default_price(data: object) -> None | Price | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                default_price_type_0 = Price.from_dict(data)

                return default_price_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Price | Unset, data)

        default_price = _parse_default_price(d.pop("default_price", UNSET))

        def _parse_price_per_credit(data: object) -> None | PricePerCredit | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                price_per_credit_type_0 = PricePerCredit.from_dict(data)

                return price_per_credit_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PricePerCredit | Unset, data)

        price_per_credit = _parse_price_per_credit(d.pop("price_per_credit", UNSET))

        product = cls(
            id=id,
            name=name,
            active=active,
            deleted=deleted,
            credit_type=credit_type,
            valid=valid,
            sellable=sellable,
            prices=prices,
            metadata=metadata,
            stripe_updated=stripe_updated,
            synced_at=synced_at,
            description=description,
            credit_amount=credit_amount,
            display_order=display_order,
            validation_error=validation_error,
            default_price=default_price,
            price_per_credit=price_per_credit,
        )

        product.additional_properties = d
        return product

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
