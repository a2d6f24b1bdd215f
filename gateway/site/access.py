"""Whether the PBX can write callers' voice messages where the gateway tells it to.

Asterisk writes each message itself (``RECORD FILE``), as its own user, into
``<messages>/YYYY/MM/DD/``; the gateway makes the day's folders, as the gateway's
user, just before. A folder the PBX cannot write loses the message, so
``gateway run --check`` asks this module, on the PBX's host, whether the PBX's
user could write there: it follows the folders from the nearest existing one down
to a day folder, those to be made taking the gateway's owner, umask and the
set-group-ID rule, and checks search and write permission at each level.
"""

from __future__ import annotations

import grp
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

#: The user Asterisk runs as on Debian, Ubuntu and the distribution packages.
PBX_USER = "asterisk"


@dataclass(frozen=True)
class Owner:
    """A folder's owner, group and mode, as it is or as the gateway would make it."""

    uid: int
    gid: int
    mode: int

    @classmethod
    def of(cls, path: Path) -> Owner:
        st = path.stat()
        return cls(st.st_uid, st.st_gid, st.st_mode)

    def made_below(self, euid: int, egid: int, umask: int) -> Owner:
        """A folder the gateway makes in this one: its owner, the group of this one if
        it is set-group-ID (and then set-group-ID too), else the gateway's group."""
        inherit = bool(self.mode & stat.S_ISGID)
        mode = (0o777 & ~umask) | (stat.S_ISGID if inherit else 0)
        return Owner(euid, self.gid if inherit else egid, mode)


def _allows(owner: Owner, uid: int, groups: set[int], bits: int) -> bool:
    """Whether user ``uid`` (in ``groups``) has every permission of ``bits`` (rwx as 0o7)."""
    if uid == 0:
        return True
    if owner.uid == uid:
        shift = 6
    elif owner.gid in groups:
        shift = 3
    else:
        shift = 0
    return (owner.mode >> shift) & bits == bits


def user_groups(user: pwd.struct_passwd) -> set[int]:
    return {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}


def write_problem(
    folder: Path,
    day: tuple[str, str, str],
    uid: int,
    groups: set[int],
    *,
    euid: int,
    egid: int,
    umask: int,
    user_name: str = PBX_USER,
) -> str | None:
    """Why user ``uid`` could not write a message in ``folder/YYYY/MM/DD`` (``day``), or None.

    Folders that do not exist yet are judged as the gateway would make them: as
    ``euid``/``egid`` with ``umask``.
    """
    folder = folder.absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    for ancestor in reversed(existing.parents):
        if not _allows(Owner.of(ancestor), uid, groups, 0o1):
            return f"{user_name} cannot enter {ancestor} (no search permission)"
    if not existing.is_dir():
        return f"{existing} is not a folder"
    where, owner, made = existing, Owner.of(existing), False
    for name in (*folder.relative_to(existing).parts, *day):
        if not _allows(owner, uid, groups, 0o1):
            return f"{user_name} cannot enter {where} (no search permission)"
        where = where / name
        made = not where.exists()
        owner = owner.made_below(euid, egid, umask) if made else Owner.of(where)
    if not _allows(owner, uid, groups, 0o3):
        how = f", made by the gateway with mode {owner.mode & 0o7777:o}" if made else ""
        return f"{user_name} cannot write in {where}{how}"
    return None
