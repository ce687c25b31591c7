"""A project's audit log, activity feed and resource logs; unhandled server errors for
platform admins."""
