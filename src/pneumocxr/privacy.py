"""Pseudonyms: the site salt, the patient hash, and how results name an input without its path.

The salt is never a public constant. It comes from, in order:

1. an explicit ``salt`` argument;
2. ``$PNEUMOCXR_PATIENT_SALT`` (the secret itself);
3. the site salt file ``$PNEUMOCXR_SALT_FILE``, else ``$XDG_CONFIG_HOME/pneumocxr/site-salt``
   (``~/.config/pneumocxr/site-salt``). The first run creates it with 32 random bytes
   (``secrets.token_hex``), file mode 0600, created exclusively so two first runs agree on one salt.
   A salt file readable by group or others is used with a warning.

Every site therefore gets its own salt; keep the file (hashes change with it) and never publish it.

Inputs are named in results, logs and overlay titles by their position in the batch and a salted
hash of their path (``input_label``: ``"#3 9f2c1ab04e7d"``); output files by the hash alone
(``input_hash``), so no raw input name - which may carry a patient's name, id or birth date - is
copied into an output name, whatever its length or encoding.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

SALT_ENV = "PNEUMOCXR_PATIENT_SALT"
SALT_FILE_ENV = "PNEUMOCXR_SALT_FILE"
HASH_DIGITS = 12  # hex digits of an input hash (48 bits: collisions negligible within a batch)


def default_salt_file() -> Path:
    """Where the site salt lives: ``$PNEUMOCXR_SALT_FILE``, else ``$XDG_CONFIG_HOME/pneumocxr/site-salt``."""
    if os.environ.get(SALT_FILE_ENV):
        return Path(os.environ[SALT_FILE_ENV])
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "pneumocxr" / "site-salt"


def site_salt(path: str | os.PathLike | None = None) -> str:
    """The site salt from ``path`` (default ``default_salt_file()``), created at first use (mode 0600).

    Raises
    ------
    OSError
        When the file cannot be read or created; the message names it.
    ValueError
        When the file exists but is empty.
    """
    path = Path(path) if path else default_salt_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another first run made it just now: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            log.info("created the site salt %s (mode 0600); keep it secret and keep it", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("the site salt %s is readable by others (mode %o); chmod 600 it", path, mode)
    salt = path.read_text().strip()
    if not salt:
        raise ValueError(f"{path}: the site salt file is empty; delete it to make a new one")
    return salt


def resolve_salt(salt: str | None = None) -> str:
    """The pseudonym salt: ``salt``, else ``$PNEUMOCXR_PATIENT_SALT``, else the site salt file."""
    return salt or os.environ.get(SALT_ENV) or site_salt()


def patient_hash(patient_id: str | None, salt: str) -> str | None:
    """First 16 hex digits of SHA-256(salt, PatientID): joins results without carrying the id."""
    if not patient_id:
        return None
    return hashlib.sha256(f"{salt}\x00{patient_id}".encode()).hexdigest()[:16]


def input_hash(path: str | os.PathLike, salt: str) -> str:
    """HMAC-SHA-256 (keyed by the salt) of an input's absolute path bytes, first ``HASH_DIGITS`` hex digits.

    Works for any file name: non-UTF-8 names are hashed as their raw bytes (``os.fsencode``).
    """
    raw = os.fsencode(os.path.abspath(os.fspath(path)))
    return hmac.new(salt.encode(), raw, hashlib.sha256).hexdigest()[:HASH_DIGITS]


def input_label(position: int, path: str | os.PathLike, salt: str) -> str:
    """How results and logs name an input: its 1-based position in the batch and its salted path hash."""
    return f"#{position} {input_hash(path, salt)}"


def display_path(path: str | os.PathLike) -> str:
    """A path as printable text (``--show-paths``): bytes that are not UTF-8 shown as ``\\xNN`` escapes."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def scrub(text: str, path: str | os.PathLike, label: str) -> str:
    """``text`` with the input's path and file name replaced by its label (messages may quote them)."""
    path = Path(path)
    for raw in sorted({str(path), os.path.abspath(path), path.name}, key=len, reverse=True):
        if raw:
            text = text.replace(raw, label)
    return text


def scrub_row(row: dict, path: str | os.PathLike, label: str) -> dict:
    """``row`` with its ``reasons`` and ``warnings`` scrubbed of the input's path (see ``scrub``), in place."""
    row["reasons"] = [scrub(r, path, label) for r in row.get("reasons") or []]
    row["warnings"] = [scrub(w, path, label) for w in row.get("warnings") or []]
    return row
