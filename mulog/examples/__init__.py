"""Example configuration and settings, as shipped in the package: ``shipper
init`` and ``mtga init`` copy them into a folder (the repository's conf/ links
here). Each file documents its keys in place.

The files here name the demo's folders, relative to the repository's conf/
(``../demo/...``): ``make demo`` runs them as they are. A copy written anywhere
else names the production folders instead (``PRODUCTION``: the state under
/var/lib/mulog, as the systemd units under deploy/systemd expect), since a
relative path is resolved against the copy's own folder (/etc/mulog/../demo is
/etc/demo, read-only under the units' ProtectSystem=strict)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FILES = {
    "shipper": ("shipper.yml",),
    "mtga": ("mtga.yml", "settings/metadata.24.json", "settings/filter.24.json"),
}

# file -> (line of the example, line of a copy written elsewhere); each line is
# found once, whole, in the example (a test holds it so).
PRODUCTION = {
    "shipper.yml": (
        ("state_dir: ../demo/state/shipper", "state_dir: /var/lib/mulog/shipper"),
        ('    paths: ["../demo/logs/*.log"]', '    paths: ["/var/log/game/*.log"]  # the game\'s log files: edit'),
    ),
    "mtga.yml": (
        ("state_dir: ../demo/state/mtga", "state_dir: /var/lib/mulog/mtga"),
        ("  dir: ../demo/output", "  dir: /var/lib/mulog/logbus"),
    ),
}


def production(name: str, text: str) -> str:
    """The example ``name``'s ``text`` with the production paths (``PRODUCTION``)."""
    lines = text.split("\n")
    for old, new in PRODUCTION.get(name, ()):
        at = [i for i, ln in enumerate(lines) if ln == old]
        if len(at) != 1:
            raise ValueError(f"{name}: the line {old!r} is there {len(at)} times, not once")
        lines[at[0]] = new
    return "\n".join(lines)


def write(program: str, folder: Path, force: bool = False) -> list[Path]:
    """Copy ``program``'s example files into ``folder`` (created 0750 if
    missing), with the production paths; returns the paths written. An
    existing file is kept unless ``force``: FileExistsError names it. A
    destination that is the example itself (the repository's conf/ links) is
    left as it is."""
    root = resources.files(__name__)
    todo = [(name, root.joinpath(name), Path(folder) / name) for name in FILES[program]]
    if not force:
        for _, _, dest in todo:
            if dest.exists():
                raise FileExistsError(17, "exists already (--force replaces it)", str(dest))
    out = []
    for name, src, dest in todo:
        if dest.exists() and isinstance(src, Path) and dest.resolve() == src.resolve():
            out.append(dest)
            continue
        dest.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        if name in PRODUCTION:
            dest.write_text(production(name, src.read_text()))
        else:
            dest.write_bytes(src.read_bytes())
        out.append(dest)
    return out
