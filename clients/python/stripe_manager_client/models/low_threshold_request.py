from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="LowThresholdRequest")


@_attrs_define
class LowThresholdRequest:
    """`{"below": "25.00"}`: an account's own low threshold; `null` goes back to the
    service's (`CREDITS_LOW_THRESHOLD`).

        Attributes:
            below (None | str | Unset):
    """

    below: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        below: None | str | Unset
        if isinstance(self.below, Unset):
            below = UNSET
        else:
            below = self.below

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if below is not UNSET:
            field_dict["below"] = below

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_below(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        below = _parse_below(d.pop("below", UNSET))

        low_threshold_request = cls(
            below=below,
        )

        return low_threshold_request
