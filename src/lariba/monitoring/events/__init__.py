"""Live resource events: a project's event feed streamed as server-sent events."""
