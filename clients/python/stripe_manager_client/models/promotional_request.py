from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PromotionalRequest")


@_attrs_define
class PromotionalRequest:
    """`POST /api/v1/accounts/{account}/credits/grants`: promotional credits from the app.

    Attributes:
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        reason (str): Why (sign-up, a campaign): kept in the journal.
        idempotency_key (str | Unset): Makes a retried grant one grant: the same key with the same amount and expiry
            answers the first grant; with others, `409 idempotency_key_reused`.
            Or the `Idempotency-Key` header (the same value if both are sent).
        expires_at (int | None | Unset): Unix seconds; never when absent.
    """

    amount: str
    reason: str
    idempotency_key: str | Unset = UNSET
    expires_at: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        reason = self.reason

        idempotency_key = self.idempotency_key

        expires_at: int | None | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "amount": amount,
                "reason": reason,
            }
        )
        if idempotency_key is not UNSET:
            field_dict["idempotency_key"] = idempotency_key
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        reason = d.pop("reason")

        idempotency_key = d.pop("idempotency_key", UNSET)

        def _parse_expires_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        promotional_request = cls(
            amount=amount,
            reason=reason,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )

        return promotional_request
