"""The auth service: users, sessions and tokens, API keys, MFA, projects, memberships, audit."""
