"""The `feedhandler run` process."""
