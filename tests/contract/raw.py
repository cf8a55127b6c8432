"""Plain requests to a proxy, beside the client: what the contract tests compare the client with."""

from __future__ import annotations

from typing import Any

import requests

from litellm_client import Release
from tests.conftest import Proxy


def headers(proxy: Proxy) -> dict[str, str]:
    return {"Authorization": f"Bearer {proxy.master_key}"}


def post(proxy: Proxy, path: str, body: Any) -> requests.Response:
    return requests.post(f"{proxy.url}{path}", json=body, headers=headers(proxy), timeout=60)


def get(proxy: Proxy, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{proxy.url}{path}", params=params, headers=headers(proxy), timeout=60)


def release_of(proxy: Proxy) -> Release:
    with proxy.client() as client:
        return client.release
