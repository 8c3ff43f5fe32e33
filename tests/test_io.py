"""gelab.io's digests: one helper behind the training fingerprint, the datasets' environment stamp and
the evaluation logs' code stamp."""

from __future__ import annotations

from pathlib import Path

from gelab.io import file_digest, files_digest, tree_digest


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("a = 1\n")
    (root / "sub" / "b.py").write_text("b = 2\n")
    (root / "notes.txt").write_text("not code\n")
    return root


def test_files_digest_covers_names_and_contents_in_any_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    files = [root / "sub" / "b.py", root / "a.py"]
    digest = files_digest(root, files)
    assert digest == files_digest(root, reversed(files))  # the order given does not matter
    assert digest == tree_digest(root, "*.py")  # the .py files of the tree: the same files, the same digest
    assert digest != tree_digest(root)  # notes.txt too
    (root / "a.py").write_text("a = 2\n")
    changed = files_digest(root, files)
    assert changed != digest
    (root / "a.py").rename(root / "c.py")  # same contents, another name
    assert files_digest(root, [root / "sub" / "b.py", root / "c.py"]) != changed


def test_digests_do_not_depend_on_where_the_folder_is(tmp_path: Path, monkeypatch) -> None:
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two" / "deeper")
    assert tree_digest(one) == tree_digest(two)
    monkeypatch.chdir(tmp_path)
    assert tree_digest(Path("one")) == tree_digest(one)  # a relative root names the same files
    assert file_digest(one / "a.py") == file_digest(Path("one/a.py"))
