"""`feedhandler bench`: measurements users can run against their own setup (latency)."""
