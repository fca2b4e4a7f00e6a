"""C2SP tlog-tiles paths and tile sets: the vectors, then properties from the spec's text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_vectors import cases
from medweave.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    LevelTiles,
    Tile,
    encode_index,
    entry_bundle_path,
    parse_entry_bundle_path,
    parse_tile_path,
    tile_levels,
    tile_path,
    tiles,
)

indices = st.one_of(st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=10**30))
levels = st.integers(min_value=0, max_value=63)
widths = st.integers(min_value=1, max_value=TILE_WIDTH)
tree_sizes = st.one_of(
    st.integers(min_value=0, max_value=1 << 20), st.integers(min_value=0, max_value=1 << 64)
)


def _shape(tree_size: int) -> dict[str, int]:
    """Our tile set in the vectors' ``want`` shape: levelL_full / levelL_partial_width, when any."""
    shape: dict[str, int] = {}
    for level in tile_levels(tree_size):
        if level.full:
            shape[f"level{level.level}_full"] = level.full
        if level.partial_width:
            shape[f"level{level.level}_partial_width"] = level.partial_width
    return shape


@pytest.mark.parametrize("case", cases("tlog_tiles_paths"), ids=lambda c: c["desc"])
def test_tlog_tiles_vectors(case: dict[str, Any]) -> None:
    if "index" in case:
        assert encode_index(case["index"]) == case["want"]
        assert parse_tile_path(tile_path(0, case["index"])).index == case["index"]
    elif "tree_size" in case:
        assert _shape(case["tree_size"]) == case["want"]
    else:
        pytest.fail(f"unknown case shape: {sorted(case)}")


@given(indices)
def test_index_encoding_is_3_digit_groups_with_x_prefixes(index: int) -> None:
    parts = encode_index(index).split("/")
    assert all(len(p) == 4 and p[0] == "x" and p[1:].isdigit() for p in parts[:-1])
    assert len(parts[-1]) == 3 and parts[-1].isdigit()
    assert parts[0] != "x000"  # No leading zero groups.
    assert int("".join(p.removeprefix("x") for p in parts)) == index


@given(levels, indices, widths)
def test_paths_round_trip(level: int, index: int, width: int) -> None:
    path = tile_path(level, index, width)
    assert path == f"tile/{level}/{encode_index(index)}" + ("" if width == TILE_WIDTH else f".p/{width}")
    assert (
        parse_tile_path(path) == Tile(level, index, width) == parse_tile_path(Tile(level, index, width).path)
    )
    bundle = entry_bundle_path(index, width)
    assert bundle == f"tile/entries/{encode_index(index)}" + ("" if width == TILE_WIDTH else f".p/{width}")
    assert parse_entry_bundle_path(bundle) == Tile(0, index, width)
    assert Tile(0, index, width).entries_path == bundle


@pytest.mark.parametrize(
    "path",
    [
        "tile/01/000",  # leading zero in L
        "tile/64/000",  # L above 63
        "tile/0/0",  # short group
        "tile/0/x000/123",  # leading zero group
        "tile/0/001/234",  # missing x
        "tile/0/x001",  # x on the last group
        "tile/0/000.p/0",
        "tile/0/000.p/256",  # a full tile has no suffix
        "tile/0/000.p/007",
        "tile/0/000.p/",
        "/tile/0/000",
        "tile/0/000/",
        "tile/entries/000",  # an entry bundle is not a hash tile
    ],
)
def test_parse_tile_path_rejects_non_canonical(path: str) -> None:
    with pytest.raises(ValueError, match="tile"):
        parse_tile_path(path)


@pytest.mark.parametrize("path", ["tile/entries/x000/001", "tile/entries/000.p/256", "tile/0/000"])
def test_parse_entry_bundle_path_rejects_non_canonical(path: str) -> None:
    with pytest.raises(ValueError, match="entry bundle"):
        parse_entry_bundle_path(path)


@given(tree_sizes)
def test_tile_set_follows_the_spec_formula(tree_size: int) -> None:
    """Level L has floor(s / 256**L) hashes; its partial tile floor(s / 256**L) mod 256 of them."""
    got = tile_levels(tree_size)
    assert [lv.level for lv in got] == list(range(len(got)))
    for lv in got:
        hashes = tree_size // TILE_WIDTH**lv.level
        assert hashes > 0
        assert lv.partial_width == hashes % TILE_WIDTH
        assert lv.full * TILE_WIDTH + lv.partial_width == hashes
    assert tree_size // TILE_WIDTH ** len(got) == 0


@settings(max_examples=25)
@given(st.integers(min_value=0, max_value=1 << 17))
def test_tiles_hold_exactly_the_complete_nodes_of_their_levels(tree_size: int) -> None:
    all_tiles = list(tiles(tree_size))
    assert all_tiles == [t for lv in tile_levels(tree_size) for t in lv.tiles()]
    for level in {t.level for t in all_tiles}:
        ids = [node for t in all_tiles if t.level == level for node in t.node_ids()]
        tree_level = TILE_HEIGHT * level
        # Every complete node of tree level 8L, in order, each exactly once.
        assert ids == [(tree_level, i) for i in range(tree_size >> tree_level)]
    for t in all_tiles:
        assert t.end <= tree_size
        assert t.is_partial == (t.width < TILE_WIDTH)
        assert t.end - t.start == t.width * TILE_WIDTH**t.level
    assert sum(t.is_partial for t in all_tiles) == sum(1 for lv in tile_levels(tree_size) if lv.partial_width)


def test_empty_tree_has_no_tiles() -> None:
    assert tile_levels(0) == [] and list(tiles(0)) == []


_BAD_CALLS: dict[str, Callable[[], object]] = {
    "width 0": lambda: Tile(0, 0, 0),
    "width 257": lambda: Tile(0, 0, TILE_WIDTH + 1),
    "level 64": lambda: Tile(64, 0),
    "negative index": lambda: Tile(0, -1),
    "encode negative": lambda: encode_index(-1),
    "negative tree size": lambda: tile_levels(-1),
    "entries above level 0": lambda: Tile(1, 0).entries_path,
}


@pytest.mark.parametrize("call", _BAD_CALLS.values(), ids=list(_BAD_CALLS))
def test_bad_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


def test_level_without_partial_tile() -> None:
    assert [t.width for t in LevelTiles(3, 2).tiles()] == [TILE_WIDTH, TILE_WIDTH]
