"""Changing streams at runtime: `POST /subscriptions` (health.py) and SIGHUP (a config reload).

A change is placed on the running connections by `subscriptions.place`: additions go to the
connections with room (`connection.streams_per_connection`), the emptiest first, and existing
streams never move. Only the connections a change concerns send requests (SUBSCRIBE /
UNSUBSCRIBE, each published as `subscribed` / `unsubscribed`); no connection restarts. A
connection that is not open takes the change at its next connect. Additions no connection has
room for open new connections, which report their streams as `subscribed` once up; a
connection left without streams is closed. The data topics of added streams are
created (or checked) first, as at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feedhandler.blocking import in_daemon_thread
from feedhandler.config import ConfigError, HandlerConfig, unknown_topics
from feedhandler.contract.streams import clash, normalize_streams
from feedhandler.sinks.base import TopicSink
from feedhandler.supervisor.connection import Connection
from feedhandler.supervisor.plan import Shard, make_shard
from feedhandler.supervisor.subscriptions import ExchangeError, RequestTimeout, place

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

log = logging.getLogger(__name__)


class ChangeRejected(ValueError):
    """A change that cannot be made as asked; nothing was changed."""


@dataclass
class ChangeResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # already there, or not there to remove
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)  # shard -> what it got
    errors: list[str] = field(default_factory=list)  # exchange errors and timeouts

    def json(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "ignored": self.ignored,
                "shards": {str(i): s for i, s in sorted(self.shards.items())},
                "errors": self.errors}


class LiveStreams:
    def __init__(self, handler: Handler,
                 reload: Callable[[], HandlerConfig] | None = None) -> None:
        """`reload`: reads the configuration again (SIGHUP); None: SIGHUP is not handled."""
        self.handler = handler
        self.reload_config = reload
        self._changing = asyncio.Lock()  # one change at a time: placement sees settled plans
        self._next_index = max((f.shard.index for f in handler.shards), default=-1) + 1
        self._homes: dict[str, int] = {}  # a removed stream -> the shard that carried it

    def connections(self) -> list[Connection]:
        if self.handler.config.connection.redundancy > 1:
            raise ChangeRejected("streams can change live only with connection.redundancy 1; "
                                 "restart with the new streams")
        children = self.handler.supervisor.children
        connections = [c for c in children if isinstance(c, Connection)]
        if len(connections) != len(children):
            raise ChangeRejected("streams can change only on exchange connections (not replay)")
        return connections

    def streams(self) -> set[str]:
        return {s for c in self.handler.supervisor.children for s in c.feed.shard.streams}

    async def change(self, add: Iterable[str], remove: Iterable[str]) -> ChangeResult:
        """Subscribe `add` and unsubscribe `remove` (stream names); ChangeRejected for bad
        input, ConfigError if the data topics of new streams cannot be had. Checked under the
        lock, against the streams then: a change under way may add one that clashes."""
        async with self._changing:
            return await self._change(*self._checked(add, remove))

    async def change_to(self, wanted: Collection[str]) -> ChangeResult | None:
        """The streams become `wanted` (SIGHUP), worked out under the lock from the streams
        then (a change under way is not undone by a stale view); None if they are already."""
        async with self._changing:
            current, target = self.streams(), set(wanted)
            if current == target:
                return None
            adding, removing = self._checked(sorted(target - current), sorted(current - target))
            return await self._change(adding, removing)

    def _checked(self, add: Iterable[str], remove: Iterable[str]) -> tuple[list[str], list[str]]:
        config = self.handler.config
        try:
            adding = normalize_streams(add, per_connection=None)
            removing = normalize_streams(remove, per_connection=None)
        except ValueError as exc:
            raise ChangeRejected(str(exc)) from None
        problem = unknown_topics(config, adding) or clash(
            [*sorted(self.streams() - set(removing)), *adding])
        if problem:
            raise ChangeRejected(problem)
        if config.shard_count > 1:  # replicas split the stream list among them
            raise ChangeRejected("streams can change live only with shard_count 1; "
                                 "restart with the new streams")
        return adding, removing

    async def _change(self, adding: list[str], removing: list[str]) -> ChangeResult:
        """The change, under the lock."""
        config = self.handler.config
        connections = self.connections()
        try:
            positions = {c.index: i for i, c in enumerate(connections)}
            placement = place([c.feed.shard.streams for c in connections], adding, removing,
                              config.connection.streams_per_connection,
                              closed={i for i, c in enumerate(connections)
                                      if c.state == "quarantined"},
                              homes={s: positions[self._homes[s]] for s in adding
                                     if self._homes.get(s) in positions})
        except ValueError as exc:
            raise ChangeRejected(str(exc)) from None
        for position, gone in placement.remove.items():
            self._homes.update(dict.fromkeys(gone, connections[position].index))
        current = self.streams()
        result = ChangeResult(
            added=sorted(set(adding) - current), removed=sorted(set(removing) & current),
            ignored=sorted(set(adding) & current | set(removing) - current))
        if result.added and isinstance(self.handler.sink, TopicSink):
            await in_daemon_thread(self.handler.sink.add_streams, result.added)
        changes = []
        for position in sorted(placement.add.keys() | placement.remove.keys()):
            connection = connections[position]
            add_here = placement.add.get(position, [])
            remove_here = placement.remove.get(position, [])
            result.shards[connection.index] = {"add": add_here, "remove": remove_here}
            streams = set(connection.feed.shard.streams) - set(remove_here) | set(add_here)
            if streams:
                changes.append(self._apply(connection, streams, result))
            else:
                self._retire(connection, result)
        for group in placement.overflow:
            self._open(group, result)
        await asyncio.gather(*changes)
        if result.errors:  # some connections went back to their streams: not what was asked
            log.error("streams changed in part: %s", result.json())
        else:
            log.info("streams changed: %s", result.json())
        return result

    async def _apply(self, connection: Connection, streams: Collection[str],
                     result: ChangeResult) -> None:
        outcome = result.shards[connection.index]
        previous = connection.feed.shard
        try:
            applied = await connection.set_streams(self._shard(connection.index, streams))
        except (ExchangeError, RequestTimeout) as exc:  # also published as events
            # Back as it was: the next connect's URL must not carry a stream the exchange
            # refused (the handshake would be refused too).
            outcome["state"] = "reverted"
            result.errors.append(f"shard {connection.index}: {exc}")
            # what it was to get or lose did not happen
            result.added = [s for s in result.added if s not in outcome["add"]]
            result.removed = [s for s in result.removed if s not in outcome["remove"]]
            try:
                await connection.set_streams(previous)
            except (ExchangeError, RequestTimeout) as again:
                outcome["state"] = "revert failed"
                result.errors.append(f"shard {connection.index}: going back failed too: {again} "
                                     "(its next connection subscribes as the status shows)")
            return
        if not applied and self.handler.supervisor.revive(connection):  # was quarantined:
            outcome["state"] = "reconnecting"  # it tries its new streams
            return
        # not open: the next connection's URL and reconcile apply it
        outcome["state"] = "applied" if applied else "pending"

    def _retire(self, connection: Connection, result: ChangeResult) -> None:
        """No stream left: close the connection rather than keep an idle one open."""
        self.handler.supervisor.retire(
            connection, lambda: self.handler.remove_feed(connection.feed))
        if connection.announced:
            connection.feed.event("unsubscribed", streams=sorted(connection.announced), id=None)
        result.shards[connection.index]["state"] = "closed"

    def _open(self, streams: list[str], result: ChangeResult) -> None:
        shard = self._shard(self._next_index, streams)
        self._next_index += 1
        child = self.handler.supervisor.add(self.handler.add_feed(shard))
        assert isinstance(child, Connection)  # connections() checked the children's kind
        child.announced = set()  # its streams are reported once it is up
        child.at_start = False  # a refused stream quarantines this connection only
        result.shards[shard.index] = {"add": list(shard.streams), "remove": [],
                                      "state": "new connection"}

    def _shard(self, index: int, streams: Collection[str]) -> Shard:
        config = self.handler.config
        return make_shard(index, tuple(sorted(streams)), config.url,
                          config.connection.time_unit)

    async def reload(self) -> None:
        """SIGHUP: read the configuration again; apply its `streams`, log what else changed
        (that needs a restart). Errors are logged: the handler runs on as it was."""
        assert self.reload_config is not None
        try:
            config = self.reload_config()
        except ConfigError as exc:
            log.error("SIGHUP: configuration not reloaded: %s", exc)
            return
        others = [key for key in changed_keys(self.handler.config.model_dump(),
                                              config.model_dump()) if key != "streams"]
        if others:
            log.warning("SIGHUP: changed %s: applied at the next restart (only `streams` "
                        "changes live)", ", ".join(others))
        if self.handler.universe is not None:  # exchangeInfo makes the streams, not `streams`
            log.info("SIGHUP: streams follow the universe (exchangeInfo); not changed")
            return
        if config.universe.kinds:  # its `streams` is only the default: keep ours till restart
            log.warning("SIGHUP: universe.kinds makes the streams from the next restart; "
                        "streams not changed")
            return
        running = self.handler.config
        if running.shard_count > 1:  # replicas split the list among them: a restart moves it
            if config.streams == running.streams:
                log.info("SIGHUP: streams unchanged")
            else:
                log.warning("SIGHUP: streams changed: with shard_count %d (replicas) they "
                            "apply at the next restart (a rollout), not live",
                            running.shard_count)
            return
        try:
            if await self.change_to(config.streams) is None:
                log.info("SIGHUP: streams unchanged")
        except (ChangeRejected, ConfigError) as exc:
            log.error("SIGHUP: streams not changed: %s", exc)


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dumps."""
    keys = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys
