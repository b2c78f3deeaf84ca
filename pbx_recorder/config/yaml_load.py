"""A bounded YAML loader for configuration files.

``yaml.safe_load`` shares one node for every alias of an anchor, so a "billion laughs" file of a
few hundred bytes becomes a structure of billions of nodes as soon as anything walks or copies
it (the config layering does): gigabytes and minutes, then ``MemoryError``.  ``load`` counts the
nodes the document stands for with its aliases expanded (linear in the file: each node's expanded
size is computed once) and refuses a document above :data:`MAX_NODES`, or one whose aliases form
a cycle, before anything is constructed.  Anchors and merge keys for sharing a few settings stay
usable.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 100_000  # a real configuration has a few hundred
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # a real configuration nests half a dozen levels; PyYAML recurses per level


class ConfigTooLarge(yaml.YAMLError):
    """The document is bigger than a configuration can be (an alias bomb, or not a config)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def expanded_size(root: Node, limit: int = MAX_NODES) -> int:
    """Nodes in ``root`` with every alias expanded; ConfigTooLarge above ``limit`` or on a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigTooLarge("YAML aliases refer to themselves (a recursive structure)")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif not isinstance(node, ScalarNode):
            raise ConfigTooLarge(f"unexpected YAML node {type(node).__name__}")
        active.discard(key)
        if total > limit:
            raise ConfigTooLarge(f"YAML aliases expand to more than {limit} nodes (an alias bomb?)")
        sizes[key] = total
        return total

    return size(root)


def load(text: str, limit: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` with a size budget; raises ``yaml.YAMLError`` (ConfigTooLarge) beyond it."""
    if len(text) > MAX_BYTES:
        raise ConfigTooLarge(f"more than {MAX_BYTES // (1024 * 1024)} MiB: not a configuration file")
    _check_depth(text)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, limit)
        return loader.construct_document(node)
    except RecursionError as exc:  # the pre-scan is token-based; a parser recursion still ends here
        raise ConfigTooLarge(f"YAML nested more than {MAX_DEPTH} levels deep") from exc
    finally:
        loader.dispose()


def _check_depth(text: str) -> None:
    """Refuse flow or block nesting deeper than :data:`MAX_DEPTH` before the (recursive) composer
    runs: ``a: [[[[...]]]]`` a few thousand levels deep was a RecursionError traceback, exit 1."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.FlowSequenceStartToken | yaml.FlowMappingStartToken
                      | yaml.BlockSequenceStartToken | yaml.BlockMappingStartToken):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigTooLarge(f"YAML nested more than {MAX_DEPTH} levels deep")
        elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken | yaml.BlockEndToken):
            depth -= 1
