from __future__ import annotations

from feedhandler.supervisor.plan import MAX_URL_BYTES, plan, replica_part, shard_url


def test_plan_is_sorted_deduplicated_and_bounded() -> None:
    streams = [f"s{i:03d}@trade" for i in range(250)]
    shards = plan("ws://h:1", [*reversed(streams), streams[0]], 100)
    assert [len(s.streams) for s in shards] == [100, 100, 50]
    assert shards[0].streams[0] == "s000@trade" and shards[2].streams[-1] == "s249@trade"
    assert [s.index for s in shards] == [0, 1, 2]


def test_replicas_split_the_plan_disjointly() -> None:
    streams = [f"s{i}@trade" for i in range(10)]
    parts = [plan("ws://h", streams, 1024, shard_index=i, shard_count=3) for i in range(3)]
    mine = [set(p[0].streams) for p in parts]
    assert set().union(*mine) == set(streams)
    assert sorted(len(m) for m in mine) == [3, 3, 4]  # balanced to one stream


def test_a_stream_added_moves_few_others_between_replicas() -> None:
    # (by position, one stream more moved about half of them to another replica)
    streams = [f"{s}usdt@{k}" for s in ("btc", "eth", "bnb", "sol", "xrp", "ada", "doge",
                                        "trx", "dot", "link")
               for k in ("trade", "aggTrade", "bookTicker", "depth@100ms")]
    for replicas in (2, 3, 5):
        before = {s: i for i in range(replicas) for s in replica_part(streams, i, replicas)}
        grown = [*streams, "aaausdt@trade"]
        after = {s: i for i in range(replicas) for s in replica_part(grown, i, replicas)}
        moved = [s for s in streams if before[s] != after[s]]
        assert len(moved) <= replicas - 1, (replicas, moved)
        sizes = [len(replica_part(grown, i, replicas)) for i in range(replicas)]
        assert max(sizes) - min(sizes) <= 1
        # a symbol's streams spread over the replicas, not all on one
        assert len({after[s] for s in grown if s.startswith("btcusdt@")}) > 1


def test_shard_url_encodes_and_keeps_explicit_paths() -> None:
    url = shard_url("ws://h:1", ("btcusdt@kline_1h@+08:00", "!miniTicker@arr"), "us")
    assert url == ("ws://h:1/stream?streams=btcusdt@kline_1h@%2B08%3A00/!miniTicker@arr"
                   "&timeUnit=MICROSECOND")
    assert shard_url("ws://h/ws/btcusdt@trade", ("x",), "ms") == "ws://h/ws/btcusdt@trade"

    assert shard_url("ws://h:1", (), "us") == "ws://h:1/stream?timeUnit=MICROSECOND"
    assert shard_url("ws://h:1", (), "ms") == "ws://h:1/stream"


def test_a_plan_too_long_for_a_url_connects_bare_and_subscribes() -> None:
    streams = [f"s{i:04d}usdt@bookTicker" for i in range(1024)]
    small, large = plan("ws://h:1", streams[:200], 200)[0], plan("ws://h:1", streams, 1024)[0]
    assert small.by_url and len(small.url) <= MAX_URL_BYTES
    assert not large.by_url and large.url == "ws://h:1/stream" and len(large.streams) == 1024
