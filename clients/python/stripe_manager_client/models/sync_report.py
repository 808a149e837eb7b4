from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.feature_counts import FeatureCounts
    from ..models.invalid_product import InvalidProduct
    from ..models.price_counts import PriceCounts
    from ..models.product_counts import ProductCounts


T = TypeVar("T", bound="SyncReport")


@_attrs_define
class SyncReport:
    """What a sync did. Also what `POST /api/v1/sync` and `sync --json` return.

    Attributes:
        run_id (int): The run's id in `sync_runs` (the admin's sync runs page).
        scope (str): `full` or `selected`.
        status (str): `succeeded` or `failed`.
        started_at (int): When the run started (unix seconds).
        finished_at (int): When it finished (unix seconds).
        duration_ms (int): How long it took, in milliseconds.
        requests (int): HTTP requests sent to Stripe, retries included.
        pages (int): List pages read from Stripe.
        products (ProductCounts): What a sync did to products.
        prices (PriceCounts): What a sync did to prices.
        features (FeatureCounts): What a sync did to features.
        invalid (list[InvalidProduct]): Products stored but not sellable, with the reason.
        errors (list[str]): What went wrong, one line each; empty when the run succeeded.
        unavailable (None | str | Unset): When the run failed because Stripe could not be used: why (`network`,
            `auth`, `circuit_open`).
    """

    run_id: int
    scope: str
    status: str
    started_at: int
    finished_at: int
    duration_ms: int
    requests: int
    pages: int
    products: ProductCounts
    prices: PriceCounts
    features: FeatureCounts
    invalid: list[InvalidProduct]
    errors: list[str]
    unavailable: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        run_id = self.run_id

        scope = self.scope

        status = self.status

        started_at = self.started_at

        finished_at = self.finished_at

        duration_ms = self.duration_ms

        requests = self.requests

        pages = self.pages

        products = self.products.to_dict()

        prices = self.prices.to_dict()

        features = self.features.to_dict()

        invalid = []
        for invalid_item_data in self.invalid:
            invalid_item = invalid_item_data.to_dict()
            invalid.append(invalid_item)

        errors = self.errors

        unavailable: None | str | Unset
        if isinstance(self.unavailable, Unset):
            unavailable = UNSET
        else:
            unavailable = self.unavailable

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "run_id": run_id,
                "scope": scope,
                "status": status,
                "started_at": started_at,
                "finished_at": finished_at,
                "duration_ms": duration_ms,
                "requests": requests,
                "pages": pages,
                "products": products,
                "prices": prices,
                "features": features,
                "invalid": invalid,
                "errors": errors,
            }
        )
        if unavailable is not UNSET:
            field_dict["unavailable"] = unavailable

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.feature_counts import FeatureCounts  # noqa: PLC0415
        from ..models.invalid_product import InvalidProduct  # noqa: PLC0415
        from ..models.price_counts import PriceCounts  # noqa: PLC0415
        from ..models.product_counts import ProductCounts  # noqa: PLC0415

        d = dict(src_dict)
        run_id = d.pop("run_id")

        scope = d.pop("scope")

        status = d.pop("status")

        started_at = d.pop("started_at")

        finished_at = d.pop("finished_at")

        duration_ms = d.pop("duration_ms")

        requests = d.pop("requests")

        pages = d.pop("pages")

        products = ProductCounts.from_dict(d.pop("products"))

        prices = PriceCounts.from_dict(d.pop("prices"))

        features = FeatureCounts.from_dict(d.pop("features"))

        invalid = []
        _invalid = d.pop("invalid")
        for invalid_item_data in _invalid:
            invalid_item = InvalidProduct.from_dict(invalid_item_data)

            invalid.append(invalid_item)

        errors = cast(list[str], d.pop("errors"))

        def _parse_unavailable(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        unavailable = _parse_unavailable(d.pop("unavailable", UNSET))

        sync_report = cls(
            run_id=run_id,
            scope=scope,
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=duration_ms,
            requests=requests,
            pages=pages,
            products=products,
            prices=prices,
            features=features,
            invalid=invalid,
            errors=errors,
            unavailable=unavailable,
        )

        sync_report.additional_properties = d
        return sync_report

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
