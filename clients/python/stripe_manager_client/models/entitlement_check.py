from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="EntitlementCheck")


@_attrs_define
class EntitlementCheck:
    """The answer of the gate.

    Attributes:
        account (str):
        lookup_key (str):
        entitled (bool):
    """

    account: str
    lookup_key: str
    entitled: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        lookup_key = self.lookup_key

        entitled = self.entitled

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "lookup_key": lookup_key,
                "entitled": entitled,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account = d.pop("account")

        lookup_key = d.pop("lookup_key")

        entitled = d.pop("entitled")

        entitlement_check = cls(
            account=account,
            lookup_key=lookup_key,
            entitled=entitled,
        )

        entitlement_check.additional_properties = d
        return entitlement_check

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
