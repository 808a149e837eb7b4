from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.entitled_feature import EntitledFeature


T = TypeVar("T", bound="Entitlements")


@_attrs_define
class Entitlements:
    """The features an account may use now.

    Attributes:
        account (str):
        data (list[EntitledFeature]):
    """

    account: str
    data: list[EntitledFeature]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        data = []
        for data_item_data in self.data:
            data_item = data_item_data.to_dict()
            data.append(data_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "data": data,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.entitled_feature import EntitledFeature  # noqa: PLC0415

        d = dict(src_dict)
        account = d.pop("account")

        data = []
        _data = d.pop("data")
        for data_item_data in _data:
            data_item = EntitledFeature.from_dict(data_item_data)

            data.append(data_item)

        entitlements = cls(
            account=account,
            data=data,
        )

        entitlements.additional_properties = d
        return entitlements

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
