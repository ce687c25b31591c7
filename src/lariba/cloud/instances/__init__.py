"""Instances (virtual machines): the first resource kind on the lifecycle engine."""
