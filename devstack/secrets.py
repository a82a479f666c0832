"""Development secrets generated once per checkout and kept in the data dir's local.env."""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values

from core.settings import generate_secret

GENERATED = ("DEV_JWT_SECRET", "SIGNING_SECRET")


def local_env_path(data_dir: Path) -> Path:
    return data_dir / "local.env"


def ensure_local_env(data_dir: Path) -> dict[str, str]:
    """The checkout's development secrets, created on first use; the environment wins over them."""
    path = local_env_path(data_dir)
    values = {key: value for key, value in dotenv_values(path).items() if value is not None}
    missing = [key for key in GENERATED if key not in values]
    if "FLOWER_BASIC_AUTH" not in values:
        missing.append("FLOWER_BASIC_AUTH")
    if missing:
        for key in missing:
            secret = generate_secret()
            values[key] = f"operator:{secret[:16]}" if key == "FLOWER_BASIC_AUTH" else secret
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
        path.chmod(0o600)
    return values
