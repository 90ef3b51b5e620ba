"""YAML's plain types only, within bounds that a hostile text cannot pass.

Every YAML text ganforge reads comes here: a config file's and a run folder's config.yaml (their
bytes read by documents.py) and a ``--set`` value. One loader builds what ``yaml.safe_load``
builds, refuses a key written twice in one mapping, and counts what the text expands to while it
is composed: an alias stands for a copy of its value, so a few hundred bytes of nested aliases
could otherwise stand for billions of values. Each bound below is far above any real config, and
stops a hostile one (an alias bomb, a huge or deeply nested file) in well under a second.
"""

from __future__ import annotations

from typing import Any

import yaml

from ganforge.errors import ConfigError, quote, shorten

MAX_CONFIG_BYTES = 2**20
MAX_CONFIG_VALUES = 10_000  # every value of the file, each use of an alias counting all it stands for
MAX_CONFIG_DEPTH = 50  # collections inside collections


def load_yaml_text(text: str, where: str) -> Any:
    """YAML text as plain data, or a ConfigError that starts with ``where`` (a file, or an option and its value).

    Only YAML's plain types are built (as ``yaml.safe_load`` does), each mapping key appears once, and the
    size of what the text expands to is bounded while it is read: an alias stands for a copy of its value,
    so a few hundred bytes of nested aliases could otherwise stand for billions of values.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: longer than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        loader = _BoundedLoader(text, where)  # libyaml checks the characters here already
        try:
            return _unshared(loader.get_single_data())
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML:\n{_bounded_lines(str(error))}") from None


def _bounded_lines(text: str, width: int = 200, lines: int = 12) -> str:
    """A message from the YAML reader, which may quote the input, cut to a few lines of bounded width."""
    kept = [shorten(line, width) for line in text.splitlines()[:lines]]
    return "\n".join(kept)


def _unshared(value: Any) -> Any:
    """A copy in which no dict or list appears twice: an override then changes one place only, not every
    place an alias stood for. The size is bounded by MAX_CONFIG_VALUES, so copying costs little."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


try:  # PyYAML built with libyaml: its parser reads text some 30 times faster than the pure-Python one
    from yaml.cyaml import CParser as _EventParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built

    class _EventParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


MERGE_TAG = "tag:yaml.org,2002:merge"


class _BoundedLoader(yaml.composer.Composer, _EventParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """``yaml.SafeLoader`` that counts what the document expands to while composing it.

    Each node's expanded size (itself and everything below it, an alias counting the whole of the
    value it names) is known when the node is complete, so the running total of the document is
    too, and reading stops as soon as it passes MAX_CONFIG_VALUES: long before a bomb is built.
    """

    def __init__(self, text: str, where: str) -> None:
        _EventParser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.where = where
        self.expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), once the node is complete
        self.total = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self.expanded:
                raise self.refused(
                    event.start_mark, f"alias *{shorten(event.anchor, 40)} is used inside the value it names"
                )
            node = super().compose_node(parent, index)
            self.count(node, self.expanded[id(node)][0])
            return node
        if self.depth >= MAX_CONFIG_DEPTH:
            raise self.refused(self.peek_event().start_mark, f"values nested more than {MAX_CONFIG_DEPTH} deep")
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        sizes = [self.expanded[id(child)] for child in children]
        values = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((child_depth for _, child_depth in sizes), default=0)
        self.expanded[id(node)] = (values, depth)
        if depth > MAX_CONFIG_DEPTH:
            raise self.refused(
                node.start_mark,
                f"the value here is nested more than {MAX_CONFIG_DEPTH} deep, counting what its aliases stand for",
            )
        self.count(node, 1)
        return node

    def count(self, node: yaml.Node, values: int) -> None:
        self.total += values
        if self.total > MAX_CONFIG_VALUES:
            raise self.refused(
                node.start_mark,
                f"more than {MAX_CONFIG_VALUES:,} values by here, counting each use of an alias as a copy of the "
                "value it names (an alias bomb?); a config holds at most that many",
            )

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            if key in first_lines:
                raise self.refused(
                    key_node.start_mark,
                    f"key {quote(key)} appears twice in the same mapping (first on line {first_lines[key]})",
                )
            first_lines[key] = key_node.start_mark.line + 1
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:  # e.g. an integer of more digits than Python converts
            raise self.refused(node.start_mark, f"cannot read this value: {shorten(str(error), 200)}") from None

    def refused(self, mark: yaml.Mark, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: line {mark.line + 1}, column {mark.column + 1}: {problem}")
