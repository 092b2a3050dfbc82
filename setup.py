"""Build hook: the wheel carries the process tree's files as package data.

`supervisord.conf`, `conf.d/`, `scripts/` (start scripts, event listener, openbox rules) and
`overlays/` (default on-screen text and scenes) stay where they are in the repository — the
top level, where the design names them — and are copied into ``appliance/tree/`` of the
built package, so `pip install .` (or pipx) then `appliance up` works without a checkout.
Every file in those folders is taken (new ones too); see ``TREE`` for what is left out.
An editable install needs no copy: ``appliance.up.default_home`` finds the checkout itself.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TREE = ("supervisord.conf", "conf.d", "scripts", "overlays", "config.example.yaml")  # what the installed package needs
SKIP_SCRIPTS = {"setup.sh", "test.sh", "go.sh"}  # the checkout's own tools, not the tree's
PACKAGE_DIR = "appliance/tree"


def tree_files(root: Path = ROOT) -> list[Path]:
    """Every file of the process tree, relative to ``root``."""
    found: list[Path] = []
    for name in TREE:
        top = root / name
        if top.is_file():
            found.append(Path(name))
            continue
        for path in sorted(top.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and "__pycache__" not in rel.parts and \
                    not (rel.parts[0] == "scripts" and path.name in SKIP_SCRIPTS):
                found.append(rel)
    return found


class build_py_with_tree(build_py):
    """build_py, then the tree's files into ``<build>/appliance/tree/`` (modes kept, so the
    start scripts stay executable in the wheel)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / PACKAGE_DIR
        shutil.rmtree(target, ignore_errors=True)
        for rel in tree_files():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest)
        (target / "__init__.py").write_text('"""The process tree\'s files (copied in at build time by setup.py)."""\n')
        os.utime(target)


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__
    setup(cmdclass={"build_py": build_py_with_tree})
