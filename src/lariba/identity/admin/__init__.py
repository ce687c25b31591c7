"""Platform administration: users, projects and the audit trail, for platform admins only."""
