"""What operators watch: request ids, logs, Prometheus metrics and the health endpoints."""
