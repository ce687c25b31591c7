"""Buckets (object storage) and their objects: a resource kind on the lifecycle engine."""
