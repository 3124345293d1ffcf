"""The KeePassXC backend: entries `kprov/<owner>/<credential>` of a `.kdbx` database, through `keepassxc-cli`.

`keepassxc-cli` (tested with 2.7, Debian 12's `keepassxc` package) reads the database password as the
first line of its stdin when stdin is not a terminal, and `add -p` / `edit -p` read the entry's password
as the next line: both secrets go on stdin, never in argv or the environment. A database unlocked by a
key file alone (`--no-password -k FILE`) needs no password at all, which suits unattended runs.
Without `-q` it prints its prompts ("Enter password to unlock ...") on stderr; with `-q` it would also
hide its errors, so the prompts are dropped from what kprov shows instead. Its messages are read in
English (`LC_ALL=C.UTF-8`, `LANGUAGE=en`): "Could not find entry" is how a missing entry is told from
a database that does not open. Commands: https://keepassxc.org/docs/KeePassXC_UserGuide#_command_line_tool
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kensium_provision.errors import InputError, StepError
from kensium_provision.secret import Secret
from kensium_provision.vault.common import (
    Done,
    Program,
    entry_name,
    never_overwrite,
    one_line,
    reference_name,
    refuse_embedded,
)

__all__ = ["KeePassXCVault"]

GROUP = "kprov"  # kprov's entries live under this group, one sub-group per owner
PREFIX = "keepassxc:"
_PROMPTS = ("Enter password to unlock", "Enter password for new entry", "Enter new password for entry")


class KeePassXCVault:
    """A KeePassXC database as the password manager; references `keepassxc:<owner>/<credential>`.

    `password` gives the database password when a command needs it (asked once at a hidden prompt by
    `make_vault`); None means the key file alone unlocks the database.
    """

    def __init__(self, database: Path, *, password: Callable[[], Secret] | None, key_file: Path | None = None,
                 timeout: float = 60.0, program: str = "keepassxc-cli") -> None:
        if password is None and key_file is None:
            raise InputError("a KeePassXC database is unlocked by a password, a key file, or both: neither was given")
        self.database = database.absolute()  # absolute: a relative name starting with `-` is not an option
        self.key_file = None if key_file is None else key_file.absolute()
        self._password = password
        self._program = Program(name=f"keepassxc-cli on {self.database}", timeout=timeout,
                                env={"LC_ALL": "C.UTF-8", "LANGUAGE": "en"},
                                install="install KeePassXC (Debian: apt-get install keepassxc)")
        self._cli = program

    # -- running keepassxc-cli ------------------------------------------------------------------------------

    def _unlock(self) -> tuple[list[str], list[Secret]]:
        """The unlock options and what goes first on stdin (the database password, if it has one)."""
        for what, path in (("database", self.database), ("key file", self.key_file)):
            if path is not None and not path.is_file():
                raise StepError(f"the KeePassXC {what} {path} does not exist",
                                hint="create the database: keepassxc-cli db-create --set-password " + str(path)
                                if what == "database" else "set vault key_file to the database's key file")
        options = [] if self.key_file is None else ["--key-file", str(self.key_file)]
        if self._password is None:
            return [*options, "--no-password"], []
        return options, [self._password()]

    def _run(self, command: str, entry: str, *, options: Sequence[str] = (), value: Secret | None = None) -> Done:
        unlock, stdin = self._unlock()
        if value is not None:
            stdin = [*stdin, value]
        argv = [self._cli, command, *unlock, *options, str(self.database), entry]
        return self._program.run(argv, "".join(one_line("KeePassXC", s) + "\n" for s in stdin))

    def _failed(self, done: Done, doing: str, *secrets: Secret) -> StepError:
        said = "\n".join(line for line in done.stderr.splitlines() if line.strip() and not line.startswith(_PROMPTS))
        hint = ""
        if "Invalid credentials" in said:
            hint = "the database is locked to kprov: the password or key file is wrong"
        elif "Error while reading the database" in said or "Failed to open database file" in said:
            hint = f"{self.database} is not a KeePassXC database kprov can read"
        return self._program.failed(Done(done.code, b"", said), *secrets, doing=doing, hint=hint)

    @staticmethod
    def _missing(done: Done) -> bool:
        return done.code != 0 and "Could not find entry" in done.stderr

    @staticmethod
    def _path(name: str) -> tuple[str, str]:
        owner, credential = entry_name(name)
        return f"{owner}/{credential}", f"{GROUP}/{owner}/{credential}"

    def _read(self, name: str) -> Secret | None:
        clean, path = self._path(name)
        done = self._run("show", path, options=("--show-protected", "--attributes", "Password"))
        if self._missing(done):
            return None
        if done.code != 0:
            raise self._failed(done, f"read {clean}")
        return Secret(self._program.text(done))

    def _groups(self, owner: str) -> None:
        for group in (GROUP, f"{GROUP}/{owner}"):
            done = self._run("mkdir", group)
            if done.code != 0 and "already exists" not in done.stderr:
                raise self._failed(done, f"add the group {group}")

    def _write(self, command: str, name: str, secret: Secret, options: Sequence[str] = ()) -> None:
        clean, path = self._path(name)
        done = self._run(command, path, options=("--password-prompt", *options), value=secret)
        if done.code != 0 and command == "add" and "Could not create entry" in done.stderr:
            self._groups(clean.partition("/")[0])  # a first entry of this owner: its groups do not exist yet
            done = self._run(command, path, options=("--password-prompt", *options), value=secret)
        if done.code != 0:
            raise self._failed(done, f"{command} {clean}", secret)
        if self._read(name) != secret:
            raise StepError(f"KeePassXC entry {clean} does not read back as the value just stored")

    # -- the vault ------------------------------------------------------------------------------------------

    def find(self, name: str) -> str | None:
        clean, path = self._path(name)
        done = self._run("show", path, options=("--attributes", "Title"))  # no protected field is printed
        if self._missing(done):
            return None
        if done.code != 0:
            raise self._failed(done, f"look up {clean}")
        return PREFIX + clean

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        clean, _ = self._path(name)
        one_line("KeePassXC", secret)
        notes = "\n".join([description, *(f"{k}={v}" for k, v in tags.items())]).strip()
        refuse_embedded(secret, description=description, tags=notes)
        existing = self._read(name)
        if existing is not None:
            if existing != secret:
                raise never_overwrite(f"KeePassXC entry {clean}")
            return PREFIX + clean
        self._write("add", name, secret, ("--notes", notes) if notes else ())  # notes: never the value
        return PREFIX + clean

    def update(self, name: str, secret: Secret) -> str:
        """Rotation: the entry's password is replaced; KeePassXC keeps the old one in the entry's history."""
        clean, _ = self._path(name)
        existing = self._read(name)
        if existing is None:
            raise StepError(f"KeePassXC has no entry {clean} to update", hint="store it first")
        if existing != secret:
            self._write("edit", name, secret)
        return PREFIX + clean

    def canonical(self, reference: str) -> str:
        return PREFIX + reference_name(PREFIX, reference, "KeePassXC")

    def fetch(self, reference: str) -> Secret:
        clean = reference_name(PREFIX, reference, "KeePassXC")
        found = self._read(clean)
        if found is None:
            raise StepError(f"KeePassXC has no entry {clean}",
                            hint=f"is {self.database} the database it was stored in?")
        return found
