"""The server's link to a RabbitMQ cluster (the RabbitMQ profile): AMQP 0-9-1 consumer."""
