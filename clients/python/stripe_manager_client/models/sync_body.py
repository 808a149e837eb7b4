from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="SyncBody")


@_attrs_define
class SyncBody:
    """`{}` (or no body) syncs the whole catalog; `products` only those.

    Attributes:
        products (list[str] | None | Unset): 1 to 100 product ids (`prod_…`).
    """

    products: list[str] | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        products: list[str] | None | Unset
        if isinstance(self.products, Unset):
            products = UNSET
        elif isinstance(self.products, list):
            products = self.products

        else:
            products = self.products

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if products is not UNSET:
            field_dict["products"] = products

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_products(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                products_type_0 = cast(list[str], data)

                return products_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        products = _parse_products(d.pop("products", UNSET))

        sync_body = cls(
            products=products,
        )

        return sync_body
