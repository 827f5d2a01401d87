"""ShardFeed: what a shard's connections share."""

from __future__ import annotations

import itertools

from feedhandler._ext.decoder import Decoder
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.plan import plan


def test_an_epoch_names_one_connection_across_the_instances_shards() -> None:
    """A stream removed and added again may come back on another shard: its records then
    carry an epoch no earlier connection of the instance had, never a repeated one."""
    epochs = itertools.count(1)
    first, second = plan("ws://exchange.invalid:1", ["btcusdt@trade", "ethusdt@trade"], 1)
    feeds = [ShardFeed(shard, Decoder(lambda kind, records: None), lambda event: None,
                       epochs=epochs) for shard in (first, second)]
    seen = []
    for feed in (feeds[0], feeds[1], feeds[0], feeds[1], feeds[1]):
        feed.attempting()
        seen.append(feed.epoch)
    assert seen == [1, 2, 3, 4, 5]
