"""Streams -> connections (shards), stable for a given stream list."""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

# Servers refuse request lines past some length (the simulator past ~16 KB, common proxies
# past 8 KB; Binance documents none): a longer plan connects bare and subscribes.
MAX_URL_BYTES = 8192


@dataclass(frozen=True)
class Shard:
    index: int
    streams: tuple[str, ...]
    url: str
    by_url: bool = True  # False: the URL names no stream, they are subscribed once connected


def shard_url(base_url: str, streams: tuple[str, ...], time_unit: str) -> str:
    """`/stream?streams=a/b` on the base URL (no streams: `/stream`); a URL that already
    has a path is used as is."""
    parts = urlsplit(base_url)
    if parts.path not in ("", "/"):
        return base_url
    query = ["streams=" + "/".join(quote(s, safe="@!_") for s in streams)] if streams else []
    if time_unit == "us":
        query.append("timeUnit=MICROSECOND")
    return f"{parts.scheme}://{parts.netloc}/stream" + ("?" + "&".join(query) if query else "")


def leg_url(shard_url: str, host_url: str) -> str:
    """`shard_url` on another host (`host_url`: ws(s)://host[:port]): a redundant leg's."""
    host = urlsplit(host_url)
    return urlunsplit(urlsplit(shard_url)._replace(scheme=host.scheme, netloc=host.netloc))


def make_shard(index: int, streams: tuple[str, ...], base_url: str, time_unit: str) -> Shard:
    url = shard_url(base_url, streams, time_unit)
    if len(url) <= MAX_URL_BYTES:
        return Shard(index, streams, url)
    return Shard(index, streams, shard_url(base_url, (), time_unit), by_url=False)


def replica_part(streams: Collection[str], shard_index: int, shard_count: int) -> list[str]:
    """This replica's streams: replicas take runs of the streams ordered by a hash of their
    names, so counts differ by one at most, a symbol's streams spread over replicas, and a
    stream added or removed moves at most `shard_count - 1` others (a rollout then leaves
    few streams unread while its pods restart one by one)."""
    ordered = sorted(streams, key=lambda name: (zlib.crc32(name.encode()), name))
    count = len(ordered)
    return ordered[shard_index * count // shard_count:(shard_index + 1) * count // shard_count]


def plan(base_url: str, streams: list[str], per_connection: int, time_unit: str = "ms",
         shard_index: int = 0, shard_count: int = 1) -> list[Shard]:
    """Split `streams` into connections of at most `per_connection` streams.

    Streams are sorted (then de-duplicated) so the plan does not depend on list order;
    `shard_index`/`shard_count` select this replica's part when several handlers share a plan.
    """
    mine = sorted(replica_part(set(streams), shard_index, shard_count))
    groups = [tuple(mine[i : i + per_connection]) for i in range(0, len(mine), per_connection)]
    return [make_shard(i, g, base_url, time_unit) for i, g in enumerate(groups)]
