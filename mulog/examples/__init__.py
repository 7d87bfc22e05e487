"""Example configuration and settings, as shipped in the package: ``shipper
init`` and ``mtga init`` copy them into a folder (the repository's conf/ links
here). Each file documents its keys in place."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FILES = {
    "shipper": ("shipper.yml",),
    "mtga": ("mtga.yml", "settings/metadata.24.json", "settings/filter.24.json"),
}


def write(program: str, folder: Path, force: bool = False) -> list[Path]:
    """Copy ``program``'s example files into ``folder`` (created 0750 if
    missing); returns the paths written. An existing file is kept unless
    ``force``: FileExistsError names it."""
    root = resources.files(__name__)
    todo = [(root.joinpath(name), Path(folder) / name) for name in FILES[program]]
    if not force:
        for _, dest in todo:
            if dest.exists():
                raise FileExistsError(17, "exists already (--force replaces it)", str(dest))
    out = []
    for src, dest in todo:
        dest.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
        out.append(dest)
    return out
