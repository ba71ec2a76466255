"""tree_stamp: the Dataset page's scan cache key notices changes anywhere under the root, cheaply."""

from __future__ import annotations

import os

from tests.helpers import make_dataset_folder, make_image
from tlcore.folder_walk import tree_stamp


def test_the_stamp_changes_when_an_image_is_added_removed_or_renamed_deep_down(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1)
    nested = root / "train" / "cats" / "indoor" / "sofa"
    nested.mkdir(parents=True)
    before = tree_stamp(root)
    assert tree_stamp(root) == before  # nothing changed, same stamp
    root_mtime = root.stat().st_mtime_ns

    make_image((1, 2, 3)).save(nested / "new.png")
    added = tree_stamp(root)
    assert added != before and root.stat().st_mtime_ns == root_mtime  # the root's own mtime did not move
    (nested / "new.png").rename(nested / "renamed.png")
    renamed = tree_stamp(root)
    assert renamed not in (before, added)
    (nested / "renamed.png").unlink()
    assert tree_stamp(root) not in (before, added, renamed)


def test_the_stamp_never_lists_a_folder_a_link_leads_to_outside_the_fence(tmp_path):
    fence = tmp_path / "fence"
    root = make_dataset_folder(fence / "data", n_train=2, n_val=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "train" / "cats" / "elsewhere")
    fenced = tree_stamp(root, within=fence)
    make_image((1, 2, 3)).save(outside / "x.png")
    assert tree_stamp(root, within=fence) == fenced  # outside is not read
    unfenced = tree_stamp(root)
    make_image((3, 2, 1)).save(outside / "y.png")
    assert tree_stamp(root) != unfenced  # without a fence, links are followed as the scan follows them


def test_a_link_loop_is_read_once_and_the_folders_read_are_bounded(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=1, n_val=1)
    os.symlink(root, root / "train" / "cats" / "loop")
    assert len(tree_stamp(root)) == 16  # terminates
    deep = root / "train" / "dogs"
    for i in range(5):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    bounded = tree_stamp(root, max_folders=3)
    make_image((1, 2, 3)).save(deep / "x.png")
    assert tree_stamp(root, max_folders=3) == bounded  # beyond the bound, not read
    assert tree_stamp(root) != tree_stamp(root, max_folders=3)
