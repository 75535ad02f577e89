"""Monitoring a person can watch: a sampler that records this machine's and each compute
target's load into the store (system_history reads the series back, as numbers or a chart),
and the gauges /metrics adds for Prometheus and the Grafana dashboard in configs/monitoring/."""
