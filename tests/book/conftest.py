"""`async def` tests run on uvloop under a timeout, as the simulator's tests do."""

from tests.simulator.server.conftest import pytest_pyfunc_call

__all__ = ["pytest_pyfunc_call"]
