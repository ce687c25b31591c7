"""Alert rules: a metric or cost compared with a threshold over a window, evaluated by
the worker every minute, notifying by webhook and e-mail when their state changes."""
