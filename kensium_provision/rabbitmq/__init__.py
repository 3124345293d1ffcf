"""RabbitMQ's management HTTP API, as kprov speaks it."""
