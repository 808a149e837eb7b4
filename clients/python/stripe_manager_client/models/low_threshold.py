from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="LowThreshold")


@_attrs_define
class LowThreshold:
    """The level under which the app gets `credits.low`.

    Attributes:
        account (str):
        below (None | str | Unset):
        own (None | str | Unset):
        default (None | str | Unset):
    """

    account: str
    below: None | str | Unset = UNSET
    own: None | str | Unset = UNSET
    default: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        below: None | str | Unset
        if isinstance(self.below, Unset):
            below = UNSET
        else:
            below = self.below

        own: None | str | Unset
        if isinstance(self.own, Unset):
            own = UNSET
        else:
            own = self.own

        default: None | str | Unset
        if isinstance(self.default, Unset):
            default = UNSET
        else:
            default = self.default

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
            }
        )
        if below is not UNSET:
            field_dict["below"] = below
        if own is not UNSET:
            field_dict["own"] = own
        if default is not UNSET:
            field_dict["default"] = default

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account = d.pop("account")

        def _parse_below(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        below = _parse_below(d.pop("below", UNSET))

        def _parse_own(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        own = _parse_own(d.pop("own", UNSET))

        def _parse_default(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        default = _parse_default(d.pop("default", UNSET))

        low_threshold = cls(
            account=account,
            below=below,
            own=own,
            default=default,
        )

        low_threshold.additional_properties = d
        return low_threshold

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
