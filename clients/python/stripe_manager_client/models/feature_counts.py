from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="FeatureCounts")


@_attrs_define
class FeatureCounts:
    """What a sync did to features.

    Attributes:
        written (int): Features written (new or changed).
        tombstoned (int): Features Stripe no longer lists, marked deleted here (a full sync only).
        products (int): Products whose features were read.
    """

    written: int
    tombstoned: int
    products: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        written = self.written

        tombstoned = self.tombstoned

        products = self.products

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "written": written,
                "tombstoned": tombstoned,
                "products": products,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        written = d.pop("written")

        tombstoned = d.pop("tombstoned")

        products = d.pop("products")

        feature_counts = cls(
            written=written,
            tombstoned=tombstoned,
            products=products,
        )

        feature_counts.additional_properties = d
        return feature_counts

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
