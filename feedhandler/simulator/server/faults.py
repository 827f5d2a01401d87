"""Faults on demand (`Faults`, the test API) and on a schedule (`FaultSpec`, the CLI's `--fault`).

Fault names and their parameters:

    drop                          TCP close without a close frame
    stall         seconds=5       no events and no server pings for that long, connection open
    gap           stream= n=1     skip n sequence numbers / trade ids (source's inject_gap)
    duplicate     stream=         repeat the next event (inject_duplicate)
    reorder       stream=         swap the next two events (inject_reorder)
    malformed                     one text frame of truncated JSON between good events
    oversized     size=16777216   one text frame of `size` bytes (valid JSON)
    binary                        one binary frame
    invalid_utf8                  one text frame that is not UTF-8
    ignore_pings  seconds=        stop answering client pings (for ever without seconds)
    close         code=1000 reason=   close handshake with that code
    shutdown                      send the serverShutdown event
    refuse        status=429 retry_after=5   answer a handshake with HTTP 429/418

`stream` defaults to every subscribed stream of the connection. A spec fires by count: for
connection faults the count is the events sent on that connection, for `refuse` the handshake
attempts seen by the server. `every=N` fires at N, 2N, ...; `after=N` fires once at N (`after=0`:
as soon as the connection opens). `conn=K` limits a connection fault to the server's K-th
connection (ids count from 1 in accept order). Example: `malformed:every=1000`,
`stall:after=5000,seconds=2`, `shutdown:after=500,conn=3`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from feedhandler.simulator.server.frames import OP_BINARY, OP_TEXT
from feedhandler.simulator.server.limits import Refusal

# fault -> parameter -> (type, default)
_PARAMS: dict[str, dict[str, tuple[type, Any]]] = {
    "drop": {},
    "stall": {"seconds": (float, 5.0)},
    "gap": {"stream": (str, None), "n": (int, 1)},
    "duplicate": {"stream": (str, None)},
    "reorder": {"stream": (str, None)},
    "malformed": {},
    "oversized": {"size": (int, 16 << 20)},
    "binary": {},
    "invalid_utf8": {},
    "ignore_pings": {"seconds": (float, None)},
    "close": {"code": (int, 1000), "reason": (str, "")},
    "shutdown": {},
    "refuse": {"status": (int, 429), "retry_after": (int, 5)},
}
FAULT_NAMES = tuple(_PARAMS)

MALFORMED = b'{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":12345,"p":"0.0'
INVALID_UTF8 = b'{"e":"trade","s":"\xc3\x28\xff"}'
BINARY = bytes(range(16))


def oversized_payload(size: int) -> bytes:
    head, tail = b'{"e":"oversized","pad":"', b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


@dataclass(frozen=True, slots=True)
class FaultSpec:
    name: str
    every: int | None = None
    after: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    conn: int | None = None  # only this connection id (connection faults)

    def __post_init__(self) -> None:
        if self.name not in _PARAMS:
            raise ValueError(f"unknown fault {self.name!r}; known: {', '.join(FAULT_NAMES)}")
        unknown = set(self.params) - set(_PARAMS[self.name])
        if unknown:
            raise ValueError(f"fault {self.name!r} takes no {', '.join(sorted(unknown))}")
        if (self.every is None) == (self.after is None):
            raise ValueError(f"fault {self.name!r} needs exactly one of every=N or after=N")
        too_small = self.every is not None and self.every < 1
        if too_small or (self.after is not None and self.after < 0):
            raise ValueError(f"fault {self.name!r}: every must be >= 1, after >= 0")
        if self.name == "refuse" and self.after == 0:  # (attempts count from 1: never)
            raise ValueError("fault 'refuse': after=N counts handshake attempts from 1")
        if self.conn is not None and (self.name == "refuse" or self.conn < 1):
            raise ValueError(f"fault {self.name!r}: conn= picks a connection id (>= 1) of a "
                             "connection fault")

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """`name:key=value,key=value`, e.g. `gap:every=500,stream=btcusdt@trade,n=3`."""
        name, _, rest = text.partition(":")
        triggers: dict[str, int] = {}
        params: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault {text!r}: expected key=value, got {item!r}")
            trigger = key in ("every", "after", "conn")
            kind = int if trigger else _PARAMS.get(name, {}).get(key, (str,))[0]
            try:
                converted = kind(value)
            except ValueError as exc:
                raise ValueError(f"fault {text!r}: {key} must be {kind.__name__}") from exc
            (triggers if trigger else params)[key] = converted
        return cls(name, params=params, **triggers)

    def param(self, key: str) -> Any:
        return self.params.get(key, _PARAMS[self.name][key][1])

    def fires_at(self, count: int) -> bool:
        if self.every is not None:
            return count > 0 and count % self.every == 0
        return count == self.after

    def next_after(self, count: int) -> int | None:
        """The first count > `count` at which this spec fires, None if never again."""
        if self.every is not None:
            return (count // self.every + 1) * self.every
        return self.after if self.after is not None and self.after > count else None


class Target(Protocol):
    """The per-connection primitives faults are made of (implemented by `Connection`)."""

    @property
    def id(self) -> int: ...
    def subscriptions(self) -> list[str]: ...
    def abort(self) -> None: ...
    def stall(self, seconds: float) -> None: ...
    def inject(self, kind: str, stream: str, n: int) -> None: ...
    def send_raw(self, opcode: int, payload: bytes) -> None: ...
    def ignore_pings(self, seconds: float | None) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def send_server_shutdown(self) -> None: ...


def apply(spec: FaultSpec, target: Target) -> None:
    """Inflict one fault (any but `refuse`) on one connection."""
    name = spec.name
    if name == "drop":
        target.abort()
    elif name == "stall":
        target.stall(spec.param("seconds"))
    elif name in ("gap", "duplicate", "reorder"):
        chosen = spec.param("stream")
        n = spec.param("n") if name == "gap" else 1
        for stream in [chosen] if chosen else target.subscriptions():
            target.inject(name, stream, n)
    elif name == "malformed":
        target.send_raw(OP_TEXT, MALFORMED)
    elif name == "oversized":
        target.send_raw(OP_TEXT, oversized_payload(spec.param("size")))
    elif name == "binary":
        target.send_raw(OP_BINARY, BINARY)
    elif name == "invalid_utf8":
        target.send_raw(OP_TEXT, INVALID_UTF8)
    elif name == "ignore_pings":
        target.ignore_pings(spec.param("seconds"))
    elif name == "close":
        target.close(spec.param("code"), spec.param("reason"))
    elif name == "shutdown":
        target.send_server_shutdown()
    else:
        raise ValueError(f"{name!r} is not a connection fault")


class FaultSchedule:
    """The scheduled connection faults, as seen by one connection's event counter."""

    def __init__(self, specs: Sequence[FaultSpec], conn: int) -> None:
        self._specs = [spec for spec in specs
                       if spec.name != "refuse" and spec.conn in (None, conn)]

    def until_next(self, sent: int) -> int | None:
        points = [p for p in (spec.next_after(sent) for spec in self._specs) if p is not None]
        return min(points) - sent if points else None

    def fire(self, target: Target, sent: int) -> None:
        for spec in self._specs:
            if spec.fires_at(sent):
                apply(spec, target)


class HandshakeFaults:
    """Refusals decided before the per-IP limit: scheduled specs and `refuse_handshakes()`."""

    def __init__(self, specs: Sequence[FaultSpec]) -> None:
        self._specs = [spec for spec in specs if spec.name == "refuse"]
        self._attempts = 0
        self._forced: list[Refusal] = []

    def force(self, refusal: Refusal, count: int) -> None:
        self._forced.extend([refusal] * count)

    def check(self) -> Refusal | None:
        self._attempts += 1
        if self._forced:
            return self._forced.pop()
        for spec in self._specs:
            if spec.fires_at(self._attempts):
                return Refusal(spec.param("status"), spec.param("retry_after"))
        return None


class Faults:
    """Test API: `sim.faults.drop()`, `sim.faults.gap("btcusdt@trade", n=3, conn=c)`, ...

    `conn` picks a connection (object or id); None means every open connection. Each method
    returns how many connections it touched.
    """

    def __init__(
        self, connections: Callable[[], Sequence[Target]], handshakes: HandshakeFaults
    ) -> None:
        self._connections = connections
        self._handshakes = handshakes

    def inflict(self, name: str, conn: Target | int | None = None, **params: Any) -> int:
        """Any connection fault by name, with the parameters listed in the module docs."""
        spec = FaultSpec(name, after=0, params=params)  # validates name and parameters
        targets = [
            c for c in self._connections()
            if conn is None or c is conn or (isinstance(conn, int) and c.id == conn)
        ]  # fmt: skip
        for target in targets:
            apply(spec, target)
        return len(targets)

    def drop(self, conn: Target | int | None = None) -> int:
        return self.inflict("drop", conn)

    def stall(self, seconds: float, conn: Target | int | None = None) -> int:
        return self.inflict("stall", conn, seconds=seconds)

    def gap(self, stream: str | None = None, n: int = 1, conn: Target | int | None = None) -> int:
        return self.inflict("gap", conn, stream=stream, n=n)

    def duplicate(self, stream: str | None = None, conn: Target | int | None = None) -> int:
        return self.inflict("duplicate", conn, stream=stream)

    def reorder(self, stream: str | None = None, conn: Target | int | None = None) -> int:
        return self.inflict("reorder", conn, stream=stream)

    def malformed(self, conn: Target | int | None = None) -> int:
        return self.inflict("malformed", conn)

    def oversized(self, size: int = 16 << 20, conn: Target | int | None = None) -> int:
        return self.inflict("oversized", conn, size=size)

    def binary(self, conn: Target | int | None = None) -> int:
        return self.inflict("binary", conn)

    def invalid_utf8(self, conn: Target | int | None = None) -> int:
        return self.inflict("invalid_utf8", conn)

    def ignore_pings(self, seconds: float | None = None, conn: Target | int | None = None) -> int:
        return self.inflict("ignore_pings", conn, seconds=seconds)

    def close(self, code: int = 1000, reason: str = "", conn: Target | int | None = None) -> int:
        return self.inflict("close", conn, code=code, reason=reason)

    def server_shutdown(self, conn: Target | int | None = None) -> int:
        return self.inflict("shutdown", conn)

    def refuse_handshakes(self, status: int = 429, count: int = 1, retry_after: int = 5) -> None:
        """Answer the next `count` handshakes with HTTP `status` (429 or 418) + Retry-After."""
        if status not in (429, 418):
            raise ValueError(f"status must be 429 or 418, got {status}")
        self._handshakes.force(Refusal(status, retry_after), count)
