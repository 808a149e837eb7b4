from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Entry")


@_attrs_define
class Entry:
    """A journal entry as the API shows it.

    Attributes:
        id (int): The entry's id; newer entries have greater ids.
        kind (str): What happened: `grant`, `consume`, `adjust`, `debt`, `forgive`, `restore`, … .
        amount (str): A quantity of credits as a decimal string: answers carry two places ("12.50", negative for
            debits); requests take at most two places and no sign ("12", "1.5").
        ref (str): What caused it: the idempotency key, the refund, the session or invoice, … .
        created_at (int): When it was written (unix seconds).
        shortfall (str | Unset): A quantity of credits as a decimal string: answers carry two places ("12.50", negative
            for debits); requests take at most two places and no sign ("12", "1.5").
        lot (int | None | Unset): The lot it moved credits of, if one.
        description (None | str | Unset): The caller's description or the operator's reason.
        actor (None | str | Unset): Who made it: the operator (adjustments, forgiveness, imports) or the token
            (promotional grants); `null` for consumptions and Stripe's effects.
    """

    id: int
    kind: str
    amount: str
    ref: str
    created_at: int
    shortfall: str | Unset = UNSET
    lot: int | None | Unset = UNSET
    description: None | str | Unset = UNSET
    actor: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        kind = self.kind

        amount = self.amount

        ref = self.ref

        created_at = self.created_at

        shortfall = self.shortfall

        lot: int | None | Unset
        if isinstance(self.lot, Unset):
            lot = UNSET
        else:
            lot = self.lot

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        actor: None | str | Unset
        if isinstance(self.actor, Unset):
            actor = UNSET
        else:
            actor = self.actor

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "kind": kind,
                "amount": amount,
                "ref": ref,
                "created_at": created_at,
            }
        )
        if shortfall is not UNSET:
            field_dict["shortfall"] = shortfall
        if lot is not UNSET:
            field_dict["lot"] = lot
        if description is not UNSET:
            field_dict["description"] = description
        if actor is not UNSET:
            field_dict["actor"] = actor

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        kind = d.pop("kind")

        amount = d.pop("amount")

        ref = d.pop("ref")

        created_at = d.pop("created_at")

        shortfall = d.pop("shortfall", UNSET)

        def _parse_lot(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        lot = _parse_lot(d.pop("lot", UNSET))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_actor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        actor = _parse_actor(d.pop("actor", UNSET))

        entry = cls(
            id=id,
            kind=kind,
            amount=amount,
            ref=ref,
            created_at=created_at,
            shortfall=shortfall,
            lot=lot,
            description=description,
            actor=actor,
        )

        entry.additional_properties = d
        return entry

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
