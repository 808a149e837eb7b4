from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.error_detail import ErrorDetail
    from ..models.sync_report import SyncReport


T = TypeVar("T", bound="Error")


@_attrs_define
class Error:
    """Every refusal: `{"error":{"code","message"}}`, with `shortfall` beside it on a `402`
    and the run's `report` on a failed sync.

        Attributes:
            error (ErrorDetail): What went wrong.
            shortfall (None | str | Unset):
            report (None | SyncReport | Unset):
    """

    error: ErrorDetail
    shortfall: None | str | Unset = UNSET
    report: None | SyncReport | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.sync_report import SyncReport  # noqa: PLC0415

        error = self.error.to_dict()

        shortfall: None | str | Unset
        if isinstance(self.shortfall, Unset):
            shortfall = UNSET
        else:
            shortfall = self.shortfall

        report: dict[str, Any] | None | Unset
        if isinstance(self.report, Unset):
            report = UNSET
        elif isinstance(self.report, SyncReport):
            report = self.report.to_dict()
        else:
            report = self.report

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "error": error,
            }
        )
        if shortfall is not UNSET:
            field_dict["shortfall"] = shortfall
        if report is not UNSET:
            field_dict["report"] = report

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.error_detail import ErrorDetail  # noqa: PLC0415
        from ..models.sync_report import SyncReport  # noqa: PLC0415

        d = dict(src_dict)
        error = ErrorDetail.from_dict(d.pop("error"))

        def _parse_shortfall(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        shortfall = _parse_shortfall(d.pop("shortfall", UNSET))

        def _parse_report(data: object) -> None | SyncReport | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                report_type_0 = SyncReport.from_dict(data)

                return report_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SyncReport | Unset, data)

        report = _parse_report(d.pop("report", UNSET))

        error = cls(
            error=error,
            shortfall=shortfall,
            report=report,
        )

        error.additional_properties = d
        return error

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
