"""Resource metrics: time series of what each instance, bucket and database used, sampled
by the worker, kept raw for days and hourly for months."""
