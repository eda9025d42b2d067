"""Fixtures for push tests: FCM's HTTP v1 API stand-in on loopback, with a key file for it.

    def test_x(fcm_api: FcmServer) -> None:
        push = fcm_api.push(on_unregistered=forgotten.append)   # a real FcmPush pointed at it
        fcm_api.api.fail("tok-b", UNREGISTERED)                 # tests.providers.fcm_api
        fcm_api.api.sent                                        # what FCM accepted

An end-to-end test sets JOURNEYS_PUSH_PROVIDER=fcm with `fcm_api.credentials_file` and
`fcm_api.url` (settings `fcm_credentials_file`, `fcm_base_url`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.providers.fcm import FcmPush
from tests.providers.fcm_api import FcmApi, ServiceAccount
from tests.providers.servers import LoopbackServer


@dataclass
class FcmServer:
    """The running stand-in (`api`), its base URL, and a service account key file whose
    `token_uri` is the stand-in's token endpoint."""

    api: FcmApi
    url: str
    credentials_file: Path
    account: ServiceAccount

    @property
    def project_id(self) -> str:
        return self.account.project_id

    def push(
        self, on_unregistered: Callable[[str], object] | None = None, **kwargs: Any
    ) -> FcmPush:
        """An FcmPush for this server (project from the key file), closed by the caller."""
        return FcmPush(
            self.credentials_file, None, self.url, on_unregistered=on_unregistered, **kwargs
        )


@pytest.fixture(scope="session")
def fcm_account() -> ServiceAccount:
    """One RSA key per session: generating one takes a while."""
    return ServiceAccount.generate()


@pytest.fixture
def fcm_api(fcm_account: ServiceAccount, tmp_path: Path) -> Iterator[FcmServer]:
    """FCM's stand-in on a free loopback port, fresh for each test."""
    with LoopbackServer(FcmApi(fcm_account)) as server:
        api = server.stub
        assert isinstance(api, FcmApi)
        path = fcm_account.write(tmp_path, token_uri=f"{server.url}/token")
        yield FcmServer(api, server.url, path, fcm_account)
