"""Binance-spot-compatible exchange simulator: a deterministic synthetic market (`market`)
served over WebSocket (`server`), or a recorded session replayed."""
