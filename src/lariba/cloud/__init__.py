"""The cloud service: projects' resources (instances, buckets, databases) and their lifecycle."""
