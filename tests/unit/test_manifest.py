"""firmware/manifest.py, the frozen-firmware manifest, freezes exactly what
`hsmtls board deploy` ships: run here with the manifest API MicroPython's build gives it
(tools/manifestfile.py: the manifest's own directory as the working directory,
package() takes every .py under base_path/package, module() one file), recorded."""

from __future__ import annotations

import os
from pathlib import Path

from hsmtls.board import FIRMWARE, FIRMWARE_LIB
from hsmtls.board.build import BOARDS
from hsmtls.board.tools import firmware_files

MANIFEST = FIRMWARE / "manifest.py"


class _Options:
    """The manifest's `options` (tools/manifestfile.py IncludeOptions): include()'s
    keywords, else the defaults the manifest sets."""

    def __init__(self, **kwargs) -> None:
        self._kwargs, self._defaults = kwargs, {}

    def defaults(self, **kwargs) -> None:
        self._defaults = kwargs

    def __getattr__(self, name: str):
        return self._kwargs.get(name, self._defaults.get(name))


def _run_manifest(manifest: Path = MANIFEST) -> tuple[list[str], set[str]]:
    """includes: the port's manifests ($(...) paths, not followed); frozen: the modules."""
    includes: list[str] = []
    frozen: set[str] = set()

    def include(path: str, **kwargs) -> None:
        if path.startswith("$("):
            includes.append(path)
        else:
            run(Path(path).resolve(), kwargs)

    def package(package_path: str, files=None, base_path: str = ".", opt=None) -> None:
        assert files is None
        root = Path(base_path).resolve()
        for src in (root / package_path).rglob("*.py"):
            frozen.add(src.relative_to(root).as_posix())

    def module(module_path: str, base_path: str = ".", opt=None) -> None:
        src = Path(base_path).resolve() / module_path
        assert src.is_file(), src
        frozen.add(module_path)

    def run(path: Path, kwargs: dict) -> None:
        # paths relative to the manifest's own directory, as the build runs it
        prev = os.getcwd()
        os.chdir(path.parent)
        try:
            api = {"include": include, "package": package, "module": module, "options": _Options(**kwargs)}
            exec(path.read_text(), api)
        finally:
            os.chdir(prev)

    run(manifest, {})
    return includes, frozen


def test_manifest_freezes_what_deploy_ships():
    includes, frozen = _run_manifest()
    shipped = {src.relative_to(FIRMWARE_LIB).as_posix() for src in firmware_files()}
    assert frozen == shipped, (sorted(shipped - frozen), sorted(frozen - shipped))
    # the port's own frozen modules stay in the image (an ESP32 port's)
    assert includes == ["$(PORT_DIR)/boards/manifest.py"]
    # main.py stays on the filesystem (MicroPython runs /main.py at boot; deploy --frozen copies it)
    assert "main.py" not in frozen


def test_unix32_manifest_is_the_firmware_over_the_unix_ports_base():
    # hsmtls board build --machine unix32: the same modules; the unix port's base
    # manifest is variants/manifest.py (it has no boards/manifest.py)
    includes, frozen = _run_manifest(BOARDS / "unix32" / "manifest.py")
    assert frozen == _run_manifest()[1]
    assert includes == ["$(PORT_DIR)/variants/manifest.py"]


def test_manifest_names_the_build_and_the_deploy():
    text = MANIFEST.read_text()
    assert "FROZEN_MANIFEST=" in text and "hsmtls board deploy" in text and "--frozen" in text
