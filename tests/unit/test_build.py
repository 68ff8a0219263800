"""hsmtls board build (hsmtls/board/build.py): where the sources come from, the cache,
and every way a build can fail said in one line. Fast: a fake MicroPython tree whose
Makefiles only make files; one slow test builds the real unix32 image and runs it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hsmtls.board import build as B
from hsmtls.cli import main as cli

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")

MPY_CROSS_MAKEFILE = "all:\n\tmkdir -p $(BUILD) && touch $(BUILD)/mpy-cross && echo built >> $(BUILD)/../count\n"
UNIX_MAKEFILE = (
    "all:\n\tmkdir -p $(BUILD) && printf '#!/bin/sh\\necho $(FROZEN_MANIFEST)\\n' > $(BUILD)/micropython"
    " && chmod +x $(BUILD)/micropython\n"
)


def fake_tree(root: Path, unix_makefile: str = UNIX_MAKEFILE) -> Path:
    tree = root / "micropython"
    for f in B.TREE_FILES:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        (tree / f).write_text("")
    (tree / "py" / "mpconfig.h").write_text(
        "#define MICROPY_VERSION_MAJOR 1\n#define MICROPY_VERSION_MINOR 28\n#define MICROPY_VERSION_MICRO 0\n")
    (tree / "mpy-cross" / "Makefile").write_text(MPY_CROSS_MAKEFILE)
    (tree / "ports" / "unix" / "Makefile").write_text(unix_makefile)
    for m in B.SUBMODULES:
        (tree / m).mkdir(parents=True, exist_ok=True)
        (tree / m / "README.md").write_text("")
    return tree


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "cache"
    monkeypatch.setenv("HSMTLS_CACHE", str(c))
    monkeypatch.delenv("HSMTLS_MICROPYTHON", raising=False)
    monkeypatch.setattr(B, "check_toolchain", lambda kind: None)
    return c


def cli_build(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["board", "build", *args])
    return r.exit_code, r.stdout, r.stderr


def one_line_error(code: int, out: str, err: str) -> str:
    """The error line (after at most the line saying a build started)."""
    assert code == 1 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) <= 2 and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert len(lines) == 1 or lines[0].startswith("building "), err
    return lines[-1]


def test_no_sources_says_how_to_get_them(cache, monkeypatch):
    monkeypatch.setattr(B, "default_sources", lambda: None)
    err = one_line_error(*cli_build("--machine", "unix32"))
    assert B.GET_SOURCES in err and "--micropython" in err


def test_default_sources_are_found_from_the_repository_up(tmp_path, monkeypatch):
    repo = tmp_path / "wt" / "branch"
    (tmp_path / "shared" / "micropython").mkdir(parents=True)
    monkeypatch.setattr(B, "REPO", repo)
    monkeypatch.delenv("HSMTLS_MICROPYTHON", raising=False)
    assert B.default_sources() == tmp_path / "shared" / "micropython"
    # $HSMTLS_MICROPYTHON first: a checkout not beside the workspace's shared/ folder
    (tmp_path / "wt").mkdir()
    monkeypatch.setenv("HSMTLS_MICROPYTHON", str(tmp_path / "wt"))
    assert B.default_sources() == tmp_path / "wt"


@pytest.mark.parametrize("what", ["missing", "not a tree", "bad tarball", "no submodule"])
def test_bad_sources_are_one_line(cache, tmp_path, what):
    if what == "missing":
        path, expect = tmp_path / "nowhere", "no such file or directory"
    elif what == "not a tree":
        (tmp_path / "empty").mkdir()
        path, expect = tmp_path / "empty", "is not a MicroPython source tree"
    elif what == "bad tarball":
        path, expect = tmp_path / "micropython-1.28.0.tar.xz", "not a readable MicroPython tarball"
        path.write_bytes(b"not xz at all")
    else:
        tree = fake_tree(tmp_path)
        shutil.rmtree(tree / "lib" / "mbedtls")
        path, expect = tree, "lacks the submodule lib/mbedtls: git -C"
    err = one_line_error(*cli_build("--machine", "unix32", "--micropython", str(path)))
    assert expect in err, err


def test_missing_32bit_toolchain_names_the_package(tmp_path, monkeypatch):
    # a gcc that cannot link -m32, as on a machine without gcc-multilib
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gcc").write_text("#!/bin/sh\necho 'cannot find crt1.o' >&2\nexit 1\n")
    (bindir / "gcc").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(B.BuildError, match=r"apt install gcc-multilib$"):
        B.check_toolchain("gcc-m32")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(B.BuildError, match="no C compiler .*apt install gcc make gcc-multilib"):
        B.check_toolchain("gcc-m32")


@needs_make
def test_failed_build_is_one_line_with_its_log(cache, tmp_path):
    tree = fake_tree(tmp_path, unix_makefile="all:\n\t@echo 'main.c:1: error: frobnicate undeclared' && false\n")
    err = one_line_error(*cli_build("--machine", "unix32", "--micropython", str(tree)))
    assert "the build failed (main.c:1: error: frobnicate undeclared); full log: " in err
    log = Path(err.rsplit("full log: ", 1)[1].strip())
    assert log.is_file() and "frobnicate" in log.read_text()


@needs_make
def test_built_once_then_from_the_cache(cache, tmp_path, monkeypatch):
    tree = fake_tree(tmp_path)
    code, out, err = cli_build("--machine", "unix32", "--micropython", str(tree))
    assert code == 0 and "building the unix32 image from MicroPython 1.28.0" in err, err
    image = Path(out.strip())
    assert out.count("\n") == 1 and image.is_file() and image.is_relative_to(cache)
    # built from the machine's manifest, out of the source tree
    manifest = subprocess.run([str(image)], capture_output=True, text=True).stdout.strip()
    assert manifest == str(B.BOARDS / "unix32" / "manifest.py")
    assert not any(p.name.startswith("build") for p in (tree / "ports" / "unix").iterdir())
    # again: the same path, nothing built; without ../shared/micropython the sources
    # given last are used
    monkeypatch.setattr(B, "default_sources", lambda: None)
    code, out2, err2 = cli_build("--machine", "unix32")
    assert code == 0 and out2 == out and err2 == "", err2
    code, out3, err3 = cli_build("--machine", "unix32", "--micropython", str(tree), "--json")
    assert code == 0 and '"built": false' in out3 and err3 == ""
    # mpy-cross was built once for this tree
    assert sum(p.read_text().count("built") for p in cache.glob("build/count")) == 1
    # a changed firmware is another image
    firmware = tmp_path / "firmware"
    shutil.copytree(B.FIRMWARE, firmware, ignore=shutil.ignore_patterns("__pycache__"))
    (firmware / "main.py").write_text((firmware / "main.py").read_text() + "# changed\n")
    monkeypatch.setattr(B, "FIRMWARE", firmware)
    code, out4, _ = cli_build("--machine", "unix32", "--micropython", str(tree))
    assert code == 0 and out4 != out
    # and the least recently used images go, past KEEP_IMAGES
    B._prune("unix32", 1)
    assert not Path(out.strip()).exists() and Path(out4.strip()).exists()


def test_a_tarball_is_unpacked_once_into_the_cache(cache, tmp_path):
    tree = fake_tree(tmp_path / "src")
    tarball = tmp_path / "micropython-1.28.0.tar.xz"
    with tarfile.open(tarball, "w:xz") as tf:
        tf.add(tree, arcname="micropython-1.28.0")
    got = B.micropython_tree(str(tarball))
    assert got.name == "micropython-1.28.0" and got.is_relative_to(cache)
    # a directory holding the tarball (../shared/micropython/) is the same sources
    assert B.micropython_tree(str(tmp_path)) == got
    assert B.source_key(got) == B._sha256_file(tarball)


def test_heap_and_machine_are_checked(cache):
    err = one_line_error(*cli_build("--machine", "unix32", "--heap", "lots"))
    assert "heap size 'lots'" in err
    assert B.parse_heap("64k") == 65536 and B.parse_heap("1m") == 1 << 20 and B.parse_heap(4096) == 4096


@pytest.mark.skipif(importlib.util.find_spec("hsmtls.board.rv32") is not None, reason="rv32 is built here")
def test_rv32_without_its_module_says_so(cache):
    err = one_line_error(*cli_build("--machine", "rv32"))
    assert "rv32 is not built by this version" in err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_unix32_image_builds_and_runs_the_frozen_firmware():
    # the real build, into the user's cache (instant when nothing changed)
    if B.default_sources() is None and (not os.environ.get("CI") or os.environ.get("HSMTLS_NO_MICROPYTHON_SOURCES")):
        pytest.skip("no MicroPython sources at ../shared/micropython")  # .ci/run says so in one line
    try:
        B.check_toolchain("gcc-m32")
    except B.BuildError as e:
        if not os.environ.get("CI"):
            pytest.skip(str(e))
        raise
    image = B.find_image("unix32")
    script = ("import gc, sys\ngc.collect(); a = gc.mem_alloc()\nimport boardapp.board, board_port\n"
              "gc.collect(); print(sys.implementation.version, sys.maxsize, gc.mem_alloc() - a)\n"
              "print(type(boardapp.board).__name__, hasattr(boardapp.board, '__file__'))\n")
    p = subprocess.run([str(image), "-X", "heapsize=64k", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=".frozen"), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    version, maxsize, live = p.stdout.split("\n")[0].rsplit(" ", 2)
    assert version == "(1, 28, 0, '')" and int(maxsize) == 2**31 - 1  # MicroPython 1.28, 32-bit
    # the code is in the image: importing the firmware leaves its objects only (27 KB
    # measured; from .mpy files in the heap it is about 140 KB on 32 bits)
    assert int(live) < 40_000, p.stdout
