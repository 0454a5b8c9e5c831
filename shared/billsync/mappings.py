"""Which mapping applies: a connector's preset, unless the deployment's configuration overrides it.

Presets ship inside each connector package as `mappings/<object>.<direction>.yaml`; a deployment
overrides one by putting a file with the same name under `<mappings_dir>/<connector>/`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from billsync.domain.mapping import Mapping, MappingError, MappingProblem, load_mapping
from billsync.domain.models import Direction


class MappingSet:
    def __init__(self, overrides_dir: Path | None = None) -> None:
        self._overrides = overrides_dir
        self._cache: dict[tuple[str, str, Direction], Mapping | None] = {}

    def get(self, connector: str, object_name: str, direction: Direction) -> Mapping | None:
        key = (connector, object_name, direction)
        if key not in self._cache:
            self._cache[key] = self._load(*key)
        return self._cache[key]

    def require(self, connector: str, object_name: str, direction: Direction) -> Mapping:
        mapping = self.get(connector, object_name, direction)
        if mapping is None:
            raise MappingError(
                [MappingProblem("", f"no mapping for {connector} {object_name} {direction.value}")]
            )
        return mapping

    def _load(self, connector: str, object_name: str, direction: Direction) -> Mapping | None:
        file_name = f"{object_name}.{direction.value}.yaml"
        if self._overrides is not None:
            override = self._overrides / connector / file_name
            if override.is_file():
                return self._checked(load_mapping(override), object_name, direction, str(override))
        preset = resources.files("billsync.connectors").joinpath(connector, "mappings", file_name)
        if not preset.is_file():
            return None
        name = f"{connector} preset {file_name}"
        return self._checked(load_mapping(preset.read_text(), name=name), object_name, direction, name)

    @staticmethod
    def _checked(mapping: Mapping, object_name: str, direction: Direction, where: str) -> Mapping:
        if mapping.object != object_name or mapping.direction != direction.value:
            message = (
                f"declares {mapping.object} {mapping.direction}, expected {object_name} {direction.value}"
            )
            raise MappingError([MappingProblem("", message)], name=where)
        return mapping

    def all_files(self, connector: str) -> list[str]:
        folder = resources.files("billsync.connectors").joinpath(connector, "mappings")
        return sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml")) if folder.is_dir() else []
