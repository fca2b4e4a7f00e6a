"""C2SP tlog-tiles resource paths, and which tiles a tree of a given size has.

https://c2sp.org/tlog-tiles: a tile at level L holds up to 256 consecutive hashes of tree level
8·L — the n-th one holds MTH(D[(n·256 + i)·256**L : (n·256 + i + 1)·256**L]) for i in 0..255.
Tiles are served at ``tile/<L>/<N>[.p/<W>]`` and the entries of a level-0 tile as an entry bundle
at ``tile/entries/<N>[.p/<W>]``. ``<N>`` is written in zero-padded 3-digit path elements, all but
the last prefixed with ``x`` (1234067 → ``x001/x234/067``); ``.p/<W>`` marks a partial tile of
width 1..255. For a tree of size s, level L has ``floor(s / 256**L) mod 256`` hashes in its
partial tile, and empty tiles do not exist. (Go's sumdb writes ``tile/<H>/<L>/<N>`` with an
explicit height: not this format.)

Paths here are relative: the caller joins them to the log's URL prefix.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from medweave.ledger.compact import NodeID

__all__ = [
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "LevelTiles",
    "Tile",
    "encode_index",
    "entry_bundle_path",
    "parse_entry_bundle_path",
    "parse_tile_path",
    "tile_levels",
    "tile_path",
    "tiles",
]

TILE_HEIGHT = 8
"""Tree levels spanned by one tile level."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256, so 8,192 bytes)."""
MAX_LEVEL = 63
"""``<L>`` is "a decimal ASCII integer between 0 and 63"."""

_DECIMAL = r"(0|[1-9][0-9]*)"
_INDEX = r"((?:x[0-9]{3}/)*[0-9]{3})"
_WIDTH = r"(?:\.p/([1-9][0-9]*))?"
_TILE_RE = re.compile(rf"tile/{_DECIMAL}/{_INDEX}{_WIDTH}")
_ENTRIES_RE = re.compile(rf"tile/entries/{_INDEX}{_WIDTH}")


@dataclass(frozen=True, order=True)
class Tile:
    """Tile ``index`` of tile level ``level``, holding ``width`` hashes (256 when full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_index(self.index)
        _check_width(self.width)

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return tile_path(self.level, self.index, self.width)

    @property
    def entries_path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``: the entry bundle of a level-0 tile."""
        if self.level != 0:
            raise ValueError(f"only level-0 tiles have entry bundles, not level {self.level}")
        return entry_bundle_path(self.index, self.width)

    @property
    def start(self) -> int:
        """The first leaf (entry) index the tile's hashes cover."""
        return self.index << (TILE_HEIGHT * (self.level + 1))

    @property
    def end(self) -> int:
        """One past the last leaf index covered by the hashes the tile holds."""
        return self.start + (self.width << (TILE_HEIGHT * self.level))

    def node_ids(self) -> list[NodeID]:
        """The Merkle tree nodes whose hashes the tile holds, in order: (8·L, N·256 + i)."""
        base = self.index * TILE_WIDTH
        return [(TILE_HEIGHT * self.level, base + i) for i in range(self.width)]


@dataclass(frozen=True)
class LevelTiles:
    """The tiles of one level for some tree size: ``full`` full ones, then maybe a partial one."""

    level: int
    full: int
    partial_width: int = 0
    """Width of the partial tile (index ``full``), or 0 when the level has none."""

    def tiles(self) -> Iterator[Tile]:
        """Every tile of this level, left to right."""
        for index in range(self.full):
            yield Tile(self.level, index)
        if self.partial_width:
            yield Tile(self.level, self.full, self.partial_width)


def encode_index(index: int) -> str:
    """``<N>``: 3-digit groups, all but the last with an ``x`` (1234067 → ``x001/x234/067``)."""
    _check_index(index)
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (https://c2sp.org/tlog-tiles)."""
    _check_level(level)
    return f"tile/{level}/{encode_index(index)}{_width_suffix(width)}"


def entry_bundle_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]`` (https://c2sp.org/tlog-tiles)."""
    return f"tile/entries/{encode_index(index)}{_width_suffix(width)}"


def parse_tile_path(path: str) -> Tile:
    """The tile named by a canonical ``tile/<L>/<N>[.p/<W>]``; ValueError for anything else."""
    match = _TILE_RE.fullmatch(path)
    if match is None:
        raise ValueError(f"not a tlog-tiles tile path: {path!r}")
    level, index, width = match.groups()
    tile = Tile(int(level), _decode_index(index), int(width) if width else TILE_WIDTH)
    if tile.path != path:  # E.g. ".p/256", or a leading "x000/".
        raise ValueError(f"not a canonical tlog-tiles tile path: {path!r}")
    return tile


def parse_entry_bundle_path(path: str) -> Tile:
    """The level-0 tile whose entry bundle a canonical ``tile/entries/<N>[.p/<W>]`` names."""
    match = _ENTRIES_RE.fullmatch(path)
    if match is None:
        raise ValueError(f"not a tlog-tiles entry bundle path: {path!r}")
    index, width = match.groups()
    tile = Tile(0, _decode_index(index), int(width) if width else TILE_WIDTH)
    if tile.entries_path != path:
        raise ValueError(f"not a canonical tlog-tiles entry bundle path: {path!r}")
    return tile


def tile_levels(tree_size: int) -> list[LevelTiles]:
    """The tiles of a tree of ``tree_size`` leaves, per level, lowest first; empty levels omitted.

    Level L has ``tree_size >> 8L`` hashes: that many // 256 full tiles and one partial tile of
    width that many % 256 when it is not zero.
    """
    if tree_size < 0:
        raise ValueError(f"tree size must be >= 0, got {tree_size}")
    levels: list[LevelTiles] = []
    level, hashes = 0, tree_size
    while hashes:
        levels.append(LevelTiles(level, hashes // TILE_WIDTH, hashes % TILE_WIDTH))
        level, hashes = level + 1, hashes >> TILE_HEIGHT
    return levels


def tiles(tree_size: int) -> Iterator[Tile]:
    """Every tile of a tree of ``tree_size`` leaves, level by level from the bottom."""
    for level in tile_levels(tree_size):
        yield from level.tiles()


def _width_suffix(width: int) -> str:
    _check_width(width)
    return "" if width == TILE_WIDTH else f".p/{width}"


def _decode_index(encoded: str) -> int:
    return int("".join(part.removeprefix("x") for part in encoded.split("/")))


def _check_level(level: int) -> None:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level must be 0..{MAX_LEVEL}, got {level}")


def _check_index(index: int) -> None:
    if index < 0:
        raise ValueError(f"tile index must be >= 0, got {index}")


def _check_width(width: int) -> None:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width must be 1..{TILE_WIDTH}, got {width}")
