from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error import Error
from ...models.hold import Hold
from ...models.hold_request import HoldRequest
from ...types import UNSET, Response, Unset


def _get_kwargs(
    account: str,
    *,
    body: HoldRequest,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/accounts/{account}/credits/holds".format(
            account=quote(str(account), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | Error | Hold | None:
    if response.status_code == 200:
        response_200 = Hold.from_dict(response.json())

        return response_200

    if response.status_code == 201:
        response_201 = Hold.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = Error.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Error.from_dict(response.json())

        return response_401

    if response.status_code == 402:
        response_402 = Error.from_dict(response.json())

        return response_402

    if response.status_code == 403:
        response_403 = Error.from_dict(response.json())

        return response_403

    if response.status_code == 408:
        response_408 = cast(Any, None)
        return response_408

    if response.status_code == 409:
        response_409 = Error.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = Error.from_dict(response.json())

        return response_413

    if response.status_code == 500:
        response_500 = Error.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = Error.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Any | Error | Hold]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    account: str,
    *,
    client: AuthenticatedClient,
    body: HoldRequest,
    idempotency_key: str | Unset = UNSET,
) -> Response[Any | Error | Hold]:
    """Reserves credits before long work: consumptions and other holds may no longer spend
    them until the hold is captured, released or expires.

    Args:
        account (str):
        idempotency_key (str | Unset):
        body (HoldRequest): `POST /api/v1/accounts/{account}/credits/holds`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | Error | Hold]
    """

    kwargs = _get_kwargs(
        account=account,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    account: str,
    *,
    client: AuthenticatedClient,
    body: HoldRequest,
    idempotency_key: str | Unset = UNSET,
) -> Any | Error | Hold | None:
    """Reserves credits before long work: consumptions and other holds may no longer spend
    them until the hold is captured, released or expires.

    Args:
        account (str):
        idempotency_key (str | Unset):
        body (HoldRequest): `POST /api/v1/accounts/{account}/credits/holds`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | Error | Hold
    """

    return sync_detailed(
        account=account,
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    account: str,
    *,
    client: AuthenticatedClient,
    body: HoldRequest,
    idempotency_key: str | Unset = UNSET,
) -> Response[Any | Error | Hold]:
    """Reserves credits before long work: consumptions and other holds may no longer spend
    them until the hold is captured, released or expires.

    Args:
        account (str):
        idempotency_key (str | Unset):
        body (HoldRequest): `POST /api/v1/accounts/{account}/credits/holds`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | Error | Hold]
    """

    kwargs = _get_kwargs(
        account=account,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    account: str,
    *,
    client: AuthenticatedClient,
    body: HoldRequest,
    idempotency_key: str | Unset = UNSET,
) -> Any | Error | Hold | None:
    """Reserves credits before long work: consumptions and other holds may no longer spend
    them until the hold is captured, released or expires.

    Args:
        account (str):
        idempotency_key (str | Unset):
        body (HoldRequest): `POST /api/v1/accounts/{account}/credits/holds`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | Error | Hold
    """

    return (
        await asyncio_detailed(
            account=account,
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
