"""Binance-compatible WebSocket stream server (design §6): protocol, limits, pacing, faults."""

from feedhandler.simulator.server.app import Simulator
from feedhandler.simulator.server.config import SimulatorConfig
from feedhandler.simulator.server.connection import Connection
from feedhandler.simulator.server.faults import Faults, FaultSpec

__all__ = ["Connection", "FaultSpec", "Faults", "Simulator", "SimulatorConfig"]
