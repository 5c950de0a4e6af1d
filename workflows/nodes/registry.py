"""The registered node types, by name. Built-ins register themselves when their module loads.

Project code adds a type with `@register_node_type` on a `NodeType` subclass.
"""

from __future__ import annotations

import importlib

from workflows.nodes.base import NodeType

BUILTIN_MODULES = (
    "workflows.nodes.python",
    "workflows.nodes.http",
    "workflows.nodes.script",
    "workflows.nodes.wait",
    "workflows.nodes.branch",
    "workflows.nodes.workflow",
)

_types: dict[str, NodeType] = {}
_loaded = False


def register_node_type[T: type[NodeType]](cls: T) -> T:
    """Class decorator: make `cls` available as the step type `cls.name`."""
    existing = _types.get(cls.name)
    if existing is not None and type(existing) is not cls:
        raise ValueError(f"node type {cls.name!r} is already registered by {type(existing)}")
    _types[cls.name] = cls()
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)  # each registers its type
        _loaded = True


def get_node_type(name: str) -> NodeType | None:
    _load_builtins()
    return _types.get(name)


def node_type_names() -> list[str]:
    _load_builtins()
    return sorted(_types)
