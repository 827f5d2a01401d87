"""Fixtures for the simulator conformance tests: `async def` tests run on uvloop (the
simulator's production loop), each under a timeout."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import uvloop

from tests.simulator.server.simhelpers import StubFactory

TEST_TIMEOUT = 20.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), TEST_TIMEOUT))
    return True


@pytest.fixture
def stub() -> StubFactory:
    return StubFactory()
