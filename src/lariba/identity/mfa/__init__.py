"""Two-factor authentication with TOTP (RFC 6238) and one-time recovery codes."""
