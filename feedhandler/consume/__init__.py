"""Reading our Kafka messages back: the decode API and the `feedhandler consume` command."""
