"""rlvr.plugins.load_object: the one resolver for `module:attr` and `file.py:attr` references."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rlvr.plugins import load_object


def _write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_module_reference() -> None:
    assert load_object("json:dumps") is json.dumps


def test_dotted_attribute() -> None:
    assert load_object("json:JSONDecoder.decode") is json.JSONDecoder.decode


def test_package_module_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "plugpkg_a" / "__init__.py", "")
    _write(tmp_path / "plugpkg_a" / "mod.py", "VALUE = 41 + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_object("plugpkg_a.mod:VALUE") == 42


def test_absolute_file_reference(tmp_path: Path) -> None:
    path = _write(tmp_path / "plug_abs.py", "def f():\n    return 'abs'\n")
    assert load_object(f"{path}:f")() == "abs"


def test_relative_file_prefers_base_dir_over_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "recipe" / "hooks" / "plug.py", "WHERE = 'base_dir'\n")
    _write(tmp_path / "cwd" / "hooks" / "plug.py", "WHERE = 'cwd'\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert load_object("hooks/plug.py:WHERE", base_dir=tmp_path / "recipe") == "base_dir"
    assert load_object("hooks/plug.py:WHERE", base_dir=tmp_path / "elsewhere") == "cwd"
    assert load_object("hooks/plug.py:WHERE") == "cwd"


def test_same_file_loads_once(tmp_path: Path) -> None:
    """A second reference to the same file must give the same class, not a look-alike copy."""
    path = _write(tmp_path / "plug_once.py", "class C:\n    pass\n")
    assert load_object(f"{path}:C") is load_object(f"{path}:C")


@pytest.mark.parametrize(
    "spec",
    ["", "json", "json:", ":dumps", "json:1bad", "json:a-b", "dir/plugin:attr", "json::dumps"],
)
def test_malformed_reference(spec: str) -> None:
    with pytest.raises(ValueError, match="malformed plugin reference"):
        load_object(spec)


def test_non_string_reference() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        load_object(None)  # type: ignore[arg-type]


def test_missing_file_names_spec_and_paths_tried(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"'nope/plug.py:f'.*file not found.*tried"):
        load_object("nope/plug.py:f", base_dir=tmp_path)


def test_missing_module() -> None:
    with pytest.raises(
        ImportError, match=r"'no_such_module_xyz.sub:f'.*no module named 'no_such_module_xyz'"
    ):
        load_object("no_such_module_xyz.sub:f")


def test_module_with_missing_dependency_is_not_reported_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "plug_dep.py", "import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"importing 'plug_dep' failed.*no_such_dependency_xyz"):
        load_object("plug_dep:f")


def test_missing_attribute(tmp_path: Path) -> None:
    path = _write(tmp_path / "plug_attr.py", "x = 1\n")
    with pytest.raises(ImportError, match=r"has no attribute 'Missing'"):
        load_object(f"{path}:Missing")
    with pytest.raises(ImportError, match=r"'json:nope'.*has no attribute 'nope'"):
        load_object("json:nope")


def test_file_that_fails_to_import_names_spec(tmp_path: Path) -> None:
    path = _write(tmp_path / "plug_bad.py", "raise RuntimeError('broken plugin')\n")
    with pytest.raises(ImportError, match=r"plug_bad.py:f'.*broken plugin") as info:
        load_object(f"{path}:f")
    assert isinstance(info.value.__cause__, RuntimeError)
