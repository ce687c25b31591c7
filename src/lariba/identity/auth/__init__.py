"""Sign-up, login, token refresh, logout, the caller's profile and password."""
