from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ProductCounts")


@_attrs_define
class ProductCounts:
    """What a sync did to products.

    Attributes:
        created (int): New here.
        updated (int): Changed since the stored copy.
        unchanged (int): Identical to the stored copy.
        stale (int): Skipped: the local row holds newer data (a webhook got there first).
        invalid (int): Stored, but with invalid metadata: listed in `invalid`, not sellable.
        tombstoned (int): Marked deleted: gone from Stripe (left out of a complete full sync, or a 404).
    """

    created: int
    updated: int
    unchanged: int
    stale: int
    invalid: int
    tombstoned: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created = self.created

        updated = self.updated

        unchanged = self.unchanged

        stale = self.stale

        invalid = self.invalid

        tombstoned = self.tombstoned

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created": created,
                "updated": updated,
                "unchanged": unchanged,
                "stale": stale,
                "invalid": invalid,
                "tombstoned": tombstoned,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created = d.pop("created")

        updated = d.pop("updated")

        unchanged = d.pop("unchanged")

        stale = d.pop("stale")

        invalid = d.pop("invalid")

        tombstoned = d.pop("tombstoned")

        product_counts = cls(
            created=created,
            updated=updated,
            unchanged=unchanged,
            stale=stale,
            invalid=invalid,
            tombstoned=tombstoned,
        )

        product_counts.additional_properties = d
        return product_counts

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
