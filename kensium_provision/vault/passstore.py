"""The `pass` backend (the standard Unix password store): entries `kprov/<owner>/<credential>`, gpg-encrypted.

pass(1) (tested with 1.7.4, Debian 12's `pass` package; https://www.passwordstore.org/ and its man page):
each entry is the file `<store>/<path>.gpg`, encrypted to the gpg ids in the nearest `.gpg-id` above
it; the first line of an entry is the password, any further lines are the owner's notes. `pass insert
-m` reads the entry from stdin (the secret never reaches argv or the environment) and, when stdin is not
a terminal, overwrites an existing entry without asking: kprov looks before it writes. gpg asks for a
key's passphrase through gpg-agent and its pinentry, never through kprov.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kensium_provision.errors import StepError
from kensium_provision.secret import Secret
from kensium_provision.vault.common import Done, Program, entry_name, never_overwrite, one_line, reference_name

__all__ = ["PassVault", "default_store"]

FOLDER = "kprov"  # kprov's entries live under this folder of the store, one sub-folder per owner
PREFIX = "pass:"


def default_store() -> Path:
    """Where pass keeps its store: `PASSWORD_STORE_DIR`, else `~/.password-store` (pass(1), ENVIRONMENT)."""
    override = os.environ.get("PASSWORD_STORE_DIR", "")
    return Path(override) if override else Path.home() / ".password-store"


class PassVault:
    """A pass store as the password manager; references `pass:<owner>/<credential>`."""

    def __init__(self, store: Path | None = None, *, timeout: float = 60.0, program: str = "pass") -> None:
        self.directory = (store or default_store()).expanduser().absolute()
        self._program = Program(name=f"pass on {self.directory}", timeout=timeout,
                                env={"PASSWORD_STORE_DIR": str(self.directory), "LC_ALL": "C.UTF-8", "LANGUAGE": "en"},
                                install="install pass and gnupg (Debian: apt-get install pass gnupg)")
        self._cli = program

    def _path(self, name: str) -> tuple[str, str, Path]:
        owner, credential = entry_name(name)
        path = f"{FOLDER}/{owner}/{credential}"
        return f"{owner}/{credential}", path, self.directory / f"{path}.gpg"

    def _ready(self, file: Path) -> None:
        """A store pass can write: initialised (`.gpg-id` in the entry's folder or above it, up to the store)."""
        if not self.directory.is_dir():
            raise StepError(f"there is no password store at {self.directory}",
                            hint="create it with `pass init <gpg-id>` (or set vault store to the existing one)")
        folder = file.parent
        while folder != self.directory and not (folder / ".gpg-id").is_file():
            folder = folder.parent
        if not (folder / ".gpg-id").is_file():
            raise StepError(f"the password store {self.directory} is not initialised (no .gpg-id)",
                            hint="run `pass init <gpg-id>`: the gpg key the entries are encrypted to")

    def _failed(self, done: Done, doing: str, *secrets: Secret) -> StepError:
        said = done.stderr
        hint = ""
        if "decryption failed" in said or "No secret key" in said:
            hint = "gpg cannot decrypt the entry: its secret key is missing here, or locked and no pinentry could ask"
        elif "encryption failed" in said or "No public key" in said or "skipped" in said:
            hint = (f"gpg cannot encrypt to the key(s) in {self.directory}/.gpg-id: import the public key, or run "
                    "pass init")
        return self._program.failed(done, *secrets, doing=doing, hint=hint)

    def _show(self, name: str) -> str | None:
        """The entry's whole text (password first), None when there is no such entry."""
        clean, path, file = self._path(name)
        if not file.is_file():
            return None
        done = self._program.run([self._cli, "show", path])
        if done.code != 0:
            raise self._failed(done, f"read {clean}")
        return self._program.text(done)

    def _write(self, name: str, text: str, secret: Secret) -> None:
        clean, path, file = self._path(name)
        self._ready(file)
        done = self._program.run([self._cli, "insert", "--multiline", "--force", path], text + "\n")
        if done.code != 0:
            raise self._failed(done, f"write {clean}", secret)
        if self.fetch(PREFIX + clean) != secret:
            raise StepError(f"pass entry {clean} does not read back as the value just stored")

    def find(self, name: str) -> str | None:
        clean, _, file = self._path(name)
        return PREFIX + clean if file.is_file() else None

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        # description and tags are not stored: an entry's other lines are its owner's, and readable only decrypted
        clean, _, _ = self._path(name)
        value = one_line("pass", secret)
        existing = self._show(name)
        if existing is not None:
            if existing.partition("\n")[0] != value:
                raise never_overwrite(f"pass entry {clean}")
            return PREFIX + clean
        self._write(name, value, secret)
        return PREFIX + clean

    def update(self, name: str, secret: Secret) -> str:
        """Rotation: the entry's first line is replaced, its other lines (the owner's notes) are kept."""
        clean, _, _ = self._path(name)
        value = one_line("pass", secret)
        existing = self._show(name)
        if existing is None:
            raise StepError(f"the password store has no entry {clean} to update", hint="store it first")
        first, newline, rest = existing.partition("\n")
        if first != value:
            self._write(name, value + newline + rest, secret)
        return PREFIX + clean

    def canonical(self, reference: str) -> str:
        return PREFIX + reference_name(PREFIX, reference, "pass")

    def fetch(self, reference: str) -> Secret:
        clean = reference_name(PREFIX, reference, "pass")
        text = self._show(clean)
        if text is None:
            self._ready(self._path(clean)[2])  # a missing or uninitialised store says so, not "no entry"
            raise StepError(f"the password store has no entry {clean}", hint=f"is {self.directory} the store it is in?")
        return Secret(text.partition("\n")[0])
