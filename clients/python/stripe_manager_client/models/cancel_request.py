from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CancelRequest")


@_attrs_define
class CancelRequest:
    """
    Attributes:
        immediately (bool | Unset): `true` ends it now (no refund here; a staff refund is separate); default: at the
            end of the paid period.
    """

    immediately: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        immediately = self.immediately

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if immediately is not UNSET:
            field_dict["immediately"] = immediately

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        immediately = d.pop("immediately", UNSET)

        cancel_request = cls(
            immediately=immediately,
        )

        return cancel_request
