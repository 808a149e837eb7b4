from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="EntitledFeature")


@_attrs_define
class EntitledFeature:
    """One active entitlement of an account: the feature's lookup key, its name (the
    lookup key when the feature is not mirrored yet) and its id.

        Attributes:
            lookup_key (str):
            name (str):
            feature (str):
    """

    lookup_key: str
    name: str
    feature: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        lookup_key = self.lookup_key

        name = self.name

        feature = self.feature

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "lookup_key": lookup_key,
                "name": name,
                "feature": feature,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        lookup_key = d.pop("lookup_key")

        name = d.pop("name")

        feature = d.pop("feature")

        entitled_feature = cls(
            lookup_key=lookup_key,
            name=name,
            feature=feature,
        )

        entitled_feature.additional_properties = d
        return entitled_feature

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
