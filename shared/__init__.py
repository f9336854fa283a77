"""What every fraudstream service shares and no business logic: event models, the topic
table, the wire codec, settings, and the Kafka and Redis plumbing."""
