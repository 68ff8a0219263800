"""firmware/manifest.py, the frozen-firmware manifest, freezes exactly what
`hsmtls board deploy` ships: run here with the manifest API MicroPython's build gives it
(tools/manifestfile.py: the manifest's own directory as the working directory,
package() takes every .py under base_path/package, module() one file), recorded."""

from __future__ import annotations

import os
from pathlib import Path

from hsmtls.board import FIRMWARE, FIRMWARE_LIB
from hsmtls.board.tools import firmware_files

MANIFEST = FIRMWARE / "manifest.py"


def _run_manifest() -> tuple[list[str], set[str]]:
    includes: list[str] = []
    frozen: set[str] = set()

    def include(path: str, **kwargs) -> None:
        includes.append(path)

    def package(package_path: str, files=None, base_path: str = ".", opt=None) -> None:
        assert files is None
        root = Path(base_path).resolve()
        for src in (root / package_path).rglob("*.py"):
            frozen.add(src.relative_to(root).as_posix())

    def module(module_path: str, base_path: str = ".", opt=None) -> None:
        src = Path(base_path).resolve() / module_path
        assert src.is_file(), src
        frozen.add(module_path)

    prev = os.getcwd()
    os.chdir(MANIFEST.parent)
    try:
        exec(MANIFEST.read_text(), {"include": include, "package": package, "module": module})
    finally:
        os.chdir(prev)
    return includes, frozen


def test_manifest_freezes_what_deploy_ships():
    includes, frozen = _run_manifest()
    shipped = {src.relative_to(FIRMWARE_LIB).as_posix() for src in firmware_files()}
    assert frozen == shipped, (sorted(shipped - frozen), sorted(frozen - shipped))
    # the port's own frozen modules stay in the image
    assert includes == ["$(PORT_DIR)/boards/manifest.py"]
    # main.py stays on the filesystem (MicroPython runs /main.py at boot; deploy --frozen copies it)
    assert "main.py" not in frozen


def test_manifest_names_the_build_and_the_deploy():
    text = MANIFEST.read_text()
    assert "FROZEN_MANIFEST=" in text and "hsmtls board deploy" in text and "--frozen" in text
