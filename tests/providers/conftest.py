"""One real loopback server per vendor for the whole session; each test gets a fresh script."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from activities.providers import EmailProvider, ProviderConfig, create_provider
from tests.providers.servers import (
    CONTRACTS,
    KEY,
    LoopbackServer,
    Script,
    Stub,
    standard_webhook_check,
)


@dataclass
class Vendor:
    """A vendor stand-in for one test: script its answers, get clients pointed at it."""

    name: str
    server: LoopbackServer
    opened: list[EmailProvider] = field(default_factory=list)

    @property
    def script(self) -> Script:
        return self.server.stub.script

    @property
    def url(self) -> str:
        return self.server.url

    def answer(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> Vendor:
        self.script.then(status, body, headers, **kw)
        return self

    def provider(self, api_key: str = KEY, **settings: Any) -> EmailProvider:
        """This vendor's client against the stand-in (closed after the test)."""
        settings.setdefault("timeout", 2.0)
        if self.name == "webhook":
            settings.setdefault("webhook_url", f"{self.url}/hooks/journeys")
        else:
            settings.setdefault("base_url", self.url)
            settings["api_key"] = SecretStr(api_key)
        provider = create_provider(ProviderConfig(provider=self.name, **settings))  # type: ignore[arg-type]
        self.opened.append(provider)
        return provider


@pytest.fixture(scope="session")
def vendor_servers() -> Iterator[dict[str, LoopbackServer]]:
    stubs = {name: Stub(c.path, c.check) for name, c in CONTRACTS.items()}
    stubs["webhook"] = Stub("/hooks/journeys", standard_webhook_check(None))
    with ExitStack() as stack:
        servers = {name: stack.enter_context(LoopbackServer(s)) for name, s in stubs.items()}
        yield servers
        for server in servers.values():
            server.stop_soon()


@pytest.fixture
def vendor(
    request: pytest.FixtureRequest, vendor_servers: dict[str, LoopbackServer]
) -> Iterator[Vendor]:
    """Parametrize indirectly with a vendor name: `@pytest.mark.parametrize("vendor", [...],
    indirect=True)`."""
    server = vendor_servers[request.param]
    server.stub.script = Script()
    check = server.stub.check
    found = Vendor(request.param, server)
    yield found
    for provider in found.opened:
        provider.close()
    server.stub.script.released.set()  # end any delayed answer now
    server.stub.check = check
