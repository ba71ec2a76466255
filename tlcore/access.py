"""Who acts, and what they may open: ownership of runs, jobs and datasets, checked in tlcore itself.

Every run, job and dataset records the opaque id of its owner. An `Actor` is
the person a call is made for: a student sees and changes only what they own;
the teacher (and the administrator: the CLI, a notebook, the single-user lab)
sees everything. Things without an owner (runs recorded before owners were
kept) belong to the teacher. A refusal reads exactly like "not there", so
nobody learns whether another student's run or job exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Owner ids are made by the lab (random hex); anything else is no one's id.
_OWNER_ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Actor:
    """The person a call acts for: their owner id ("" for the administrator) and whether they teach."""

    owner: str = ""
    teacher: bool = True

    def may_use(self, owner: str | None) -> bool:
        """Whether this actor may see, open, stop or delete something `owner` owns ("" or None: the teacher's)."""
        return self.teacher or (bool(self.owner) and owner == self.owner)


ADMIN = Actor()  # the CLI, notebooks and the single-user lab: everything, as before class mode


def student(owner: str) -> Actor:
    """A student acting for themselves (a valid owner id, or ValueError)."""
    if not is_owner_id(owner):
        raise ValueError(f"not an owner id: {owner!r}")
    return Actor(owner, teacher=False)


def is_owner_id(text: str) -> bool:
    return bool(_OWNER_ID.match(text or ""))


def plain_name(name: str) -> bool:
    """Whether `name` is one folder name inside a folder the lab owns: no separators, no "..", not hidden."""
    return bool(name) and name == name.strip() and "/" not in name and "\\" not in name and not name.startswith(".")
