"""Binance WebSocket API (`ws-api/v3`) client: requests matched by id, a shared request-weight
budget, Ed25519 session logon. See `client.WsApiClient`."""

from feedhandler.wsapi.budget import NORMAL, REFRESH, RESYNC, SNAPSHOT, URGENT, WeightBudget
from feedhandler.wsapi.client import WsApiClient
from feedhandler.wsapi.signing import Credentials, KeySources

__all__ = [
    "NORMAL",
    "REFRESH",
    "RESYNC",
    "SNAPSHOT",
    "URGENT",
    "Credentials",
    "KeySources",
    "WeightBudget",
    "WsApiClient",
]
