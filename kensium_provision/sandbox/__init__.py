"""The embedded sandbox: a moto server and a RabbitMQ management emulator on loopback."""
