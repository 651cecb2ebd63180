"""Reading manifests for ``transporter produce``: files, folders, and the event's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from transporter.produce.files import ManifestFileError, read_manifests
from transporter.protocol.submission import MAX_MANIFEST_BYTES, MAX_MANIFESTS

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


def test_a_folder_gives_its_yaml_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(CM.replace("c}", "b}"))
    (tmp_path / "a.yml").write_text(CM.replace("c}", "a}"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert read_manifests([tmp_path]) == [CM.replace("c}", "a}"), CM.replace("c}", "b}")]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.yaml", "no such file"),
        (lambda d: (d / "empty.yaml", (d / "empty.yaml").write_text("  \n"))[0], "is empty"),
        (lambda d: d, "no .yaml"),
    ],
)
def test_unusable_paths_are_named(tmp_path: Path, make: object, words: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ManifestFileError) as caught:
        read_manifests([path])
    assert words in str(caught.value)


def test_the_control_planes_limits_are_told_before_sending(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(CM + "data:\n  blob: " + "x" * MAX_MANIFEST_BYTES + "\n")
    with pytest.raises(ManifestFileError, match=f"at most {MAX_MANIFEST_BYTES}"):
        read_manifests([big])
    many = tmp_path / "many"
    many.mkdir()
    for n in range(MAX_MANIFESTS + 1):
        (many / f"{n:04}.yaml").write_text(CM)
    with pytest.raises(ManifestFileError, match=f"at most {MAX_MANIFESTS}"):
        read_manifests([many])
