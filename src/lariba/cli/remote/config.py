"""The command line's config file: one profile per server account, with its address, its
tokens (or API key) and a default project. It never holds a password."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    url: str
    email: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    api_key: str | None = None
    project: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.access_token is not None or self.api_key is not None

    def logged_out(self) -> Profile:
        return replace(self, access_token=None, refresh_token=None, api_key=None)


def config_path() -> Path:
    """``LARIBA_CONFIG``, else ``$XDG_CONFIG_HOME/lariba/config.toml`` (``~/.config``)."""
    explicit = os.environ.get("LARIBA_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lariba" / "config.toml"


class ConfigError(Exception):
    """The config file exists but cannot be read."""


def load_profiles(path: Path) -> dict[str, Profile]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    known = {f.name for f in fields(Profile)}
    profiles: dict[str, Profile] = {}
    for name, values in (data.get("profiles") or {}).items():
        if not isinstance(values, dict) or not isinstance(values.get("url"), str):
            raise ConfigError(f"profile {name!r} in {path} has no url")
        profiles[name] = Profile(
            **{k: str(v) for k, v in values.items() if k in known and v is not None}
        )
    return profiles


def save_profiles(path: Path, profiles: dict[str, Profile]) -> None:
    """Replaces the file in one step (a crash leaves the old or the new file, never half
    of one), readable by its owner only."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(_to_toml(profiles))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _to_toml(profiles: dict[str, Profile]) -> str:
    # Every value is a string; a JSON string is a valid TOML basic string.
    lines = ["# Written by `lariba login`. Holds tokens: keep it private (mode 0600)."]
    for name, profile in sorted(profiles.items()):
        lines.append(f"\n[profiles.{json.dumps(name)}]")
        for field in fields(Profile):
            value = getattr(profile, field.name)
            if value is not None:
                lines.append(f"{field.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
