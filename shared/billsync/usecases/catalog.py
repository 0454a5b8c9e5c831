"""What a deployment syncs, object by object, as its configuration and mappings declare it.

Read without credentials (no connector is built, nothing is called), so the operator command line and
the ops function can check an operator's request before anything is queued: the deployment has a
mapping for each object and direction its connectors sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from billsync.config import Config
from billsync.domain.models import Direction
from billsync.mappings import MappingSet

_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def looks_like_salesforce_id(value: str) -> bool:
    """15 or 18 letters and digits, not all digits (billing ids are often numbers of that length)."""
    return bool(_SALESFORCE_ID.match(value)) and not value.isdigit()


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    directions: tuple[Direction, ...]
    sources: tuple[str, ...]  # the sources whose connector syncs it
    enabled: bool
    automatic: bool

    @property
    def mode(self) -> str:
        """`off`, `manual` or `automatic`."""
        if not self.enabled:
            return "off"
        return "automatic" if self.automatic else "manual"


def object_catalog(config: Config, mappings: MappingSet) -> dict[str, ObjectInfo]:
    """Every object some source of the deployment syncs, with its directions and switches."""
    directions: dict[str, set[Direction]] = {}
    sources: dict[str, list[str]] = {}
    for source in config.sources:
        for file_name in mappings.all_files(source.connector):
            object_name, direction, _ = file_name.split(".")
            directions.setdefault(object_name, set()).add(Direction(direction))
            if source.key not in sources.setdefault(object_name, []):
                sources[object_name].append(source.key)
    order = list(Direction)
    return {
        name: ObjectInfo(
            name=name,
            directions=tuple(sorted(found, key=order.index)),
            sources=tuple(sources[name]),
            enabled=config.object_enabled(name),
            automatic=config.object_automatic(name),
        )
        for name, found in sorted(directions.items())
    }
