"""`make bench`: the project's throughput, latency and memory against pgbench and a Celery no-op, in one run."""
