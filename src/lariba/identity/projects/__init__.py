"""Projects (tenants), their members and roles, invitations and ownership transfer."""
