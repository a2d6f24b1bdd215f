"""The roles a person may hold, which kind of unit each belongs to, and what it sees.

=============  ==========================  ==========================================
role           unit kind                   sees
=============  ==========================  ==========================================
leader         city, office                every unit, and the hotline
supervision    office                      every unit, the hotline, the audit log
bureau         sub_bureau, county_bureau   its unit and the units under it
station        station                     its station
hotline        department                  the hotline only (no unit's cases)
=============  ==========================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    code: str
    name: str  # as people read it
    unit_kinds: tuple[str, ...]
    all_units: bool  # sees every unit
    unit_tree: bool  # sees the units under its own
    hotline: bool


ROLES = {
    role.code: role
    for role in (
        Role("leader", "局领导", ("city", "office"), True, False, True),
        Role("supervision", "督办室", ("office",), True, False, True),
        Role("bureau", "分局/县局", ("sub_bureau", "county_bureau"), False, True, False),
        Role("station", "派出所所长", ("station",), False, False, False),
        Role("hotline", "热线班长", ("department",), False, False, True),
    )
}
# Who may read the audit log.
AUDIT_READERS = ("supervision",)
