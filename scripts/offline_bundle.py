"""Pack wheels and files into parts small enough for one transfer each, and restore them on an offline host.

A bundle is a folder of ``part-NN`` folders, each at most ``--part-mb`` megabytes. A file larger than a part is
split byte-wise into ``NAME.piece-NNN`` files. ``part-01/MANIFEST.json`` lists every file of the bundle (its
size, sha256 and pieces) and the number of parts, so the host can tell a missing part from a corrupt one.

Here, where PyPI works (standard library only, Python >= 3.8):

    python3 scripts/offline_bundle.py pack --out .bundle --part-mb 50 --wheels trl==1.16.0 --file model.bin

On the host, once every part is under one folder (carried one part per transfer):

    python3 scripts/offline_bundle.py restore .bundle /tmp/wheels   # checks, joins pieces, prints file names

Exit 0 on success; 1 with one line on stderr when a part is missing or a file does not match its hash;
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MANIFEST = "MANIFEST.json"
#: The offline GPU host: CPython 3.12 on x86-64 Linux (manylinux).
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


class BundleError(Exception):
    """A bundle that cannot be restored (missing part, bad hash)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(pins: list[str], dest: Path, python_version: str = "3.12") -> list[Path]:
    """``pip download --no-deps`` binary wheels of ``pins`` for the host's platform into ``dest``."""
    if not pins:
        return []
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + pins, check=True)
    return sorted(set(dest.iterdir()) - before)


def plan_parts(sizes: dict[str, int], part_bytes: int) -> list[list[tuple[str, int, int]]]:
    """Assign files (or byte ranges of large files) to parts: ``[[(name, offset, length), ...], ...]``.

    Largest first, each item into the first part with room (first-fit decreasing).

    >>> plan_parts({"a": 5, "b": 3, "c": 2, "d": 9}, 6)
    [[('d', 0, 6)], [('d', 6, 3), ('b', 0, 3)], [('a', 0, 5)], [('c', 0, 2)]]
    """
    items = []
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        for offset in range(0, max(size, 1), part_bytes):
            items.append((name, offset, min(part_bytes, size - offset)))
    parts: list[list[tuple[str, int, int]]] = []
    room: list[int] = []
    for item in items:
        for i, free in enumerate(room):
            if item[2] <= free:
                parts[i].append(item)
                room[i] -= item[2]
                break
        else:
            parts.append([item])
            room.append(part_bytes - item[2])
    return parts


def pack(files: list[Path], out: Path, part_bytes: int, name: str) -> dict:
    """Write ``out/part-NN`` folders for ``files``; returns the manifest. ``out`` must not exist."""
    sizes = {f.name: f.stat().st_size for f in files}
    if len(sizes) != len(files):
        raise BundleError("two files share a name")
    by_name = {f.name: f for f in files}
    parts = plan_parts(sizes, part_bytes)
    manifest = {"bundle": name, "parts": len(parts), "files": {}}
    for n in sizes:
        manifest["files"][n] = {"size": sizes[n], "sha256": _sha256(by_name[n]), "pieces": []}
    for number, items in enumerate(parts, start=1):
        folder = out / f"part-{number:02d}"
        folder.mkdir(parents=True)
        for n, offset, length in items:
            whole = length == sizes[n]
            target = folder / (n if whole else f"{n}.piece-{offset // part_bytes:03d}")
            if whole:
                shutil.copyfile(by_name[n], target)
            else:
                with open(by_name[n], "rb") as src, open(target, "wb") as dst:
                    src.seek(offset)
                    dst.write(src.read(length))
            manifest["files"][n]["pieces"].append([f"part-{number:02d}", target.name])
    (out / "part-01" / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def restore(bundle: Path, dest: Path) -> list[Path]:
    """Check every part of ``bundle``, join pieces into ``dest``, verify each file's sha256."""
    manifest_path = bundle / "part-01" / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} is missing: carry part-01 of the bundle")
    manifest = json.loads(manifest_path.read_text())
    missing = [f"part-{n:02d}" for n in range(1, manifest["parts"] + 1) if not (bundle / f"part-{n:02d}").is_dir()]
    if missing:
        raise BundleError(f"{bundle} lacks {', '.join(missing)} of {manifest['parts']} parts: carry them again "
                          "(parts kept in /tmp are lost when the host went cold between transfers)")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n, info in sorted(manifest["files"].items()):
        target = dest / n
        fd, tmp = tempfile.mkstemp(prefix=f".{n}.", suffix=".tmp", dir=dest)
        with os.fdopen(fd, "wb") as dst:
            for part, piece in info["pieces"]:
                src = bundle / part / piece
                if not src.is_file():
                    os.unlink(tmp)
                    raise BundleError(f"{src} is missing (part {part} is incomplete): carry it again")
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, dst, 1 << 20)
        if _sha256(Path(tmp)) != info["sha256"]:
            os.unlink(tmp)
            raise BundleError(f"{n} does not match its sha256 in {manifest_path}: a part is corrupt, carry it again")
        os.replace(tmp, target)
        out.append(target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack", help="download wheels, add files, write part folders")
    p.add_argument("--out", required=True, type=Path, help="the bundle folder to create (must not exist)")
    p.add_argument("--part-mb", type=float, default=50.0, help="largest part in MB (10^6 bytes); default 50")
    p.add_argument("--wheels", nargs="*", default=[], metavar="PKG==VER", help="wheels to download (no deps)")
    p.add_argument("--requirements", nargs="*", default=[], type=Path, metavar="FILE",
                   help="files of PKG==VER lines ('#' comments) to download")
    p.add_argument("--file", nargs="*", default=[], type=Path, dest="files", help="local files to add as they are")
    r = sub.add_parser("restore", help="check the parts and rebuild every file")
    r.add_argument("bundle", type=Path)
    r.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.verb == "restore":
            for f in restore(args.bundle, args.dest):
                print(f)
            return 0
        if args.out.exists():
            parser.exit(2, f"offline_bundle: {args.out} exists: remove it or pick another --out\n")
        pins = list(args.wheels)
        for req in args.requirements:
            if not req.is_file():
                parser.exit(2, f"offline_bundle: {req}: no such requirements file\n")
            pins += [ln.split("#")[0].strip() for ln in req.read_text().splitlines() if ln.split("#")[0].strip()]
        for f in args.files:
            if not f.is_file():
                parser.exit(2, f"offline_bundle: {f}: no such file\n")
        if args.part_mb <= 0:
            parser.exit(2, "offline_bundle: --part-mb must be > 0\n")
        with tempfile.TemporaryDirectory() as tmp:
            wheels = download(pins, Path(tmp))
            staging = args.out.with_name(f".{args.out.name}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            manifest = pack(wheels + list(args.files), staging, int(args.part_mb * 1e6), args.out.name)
            staging.rename(args.out)
        total = sum(f["size"] for f in manifest["files"].values())
        print(f"{args.out}: {len(manifest['files'])} files, {total / 1e6:.1f} MB in {manifest['parts']} part(s)")
        return 0
    except BundleError as e:
        print(f"offline_bundle: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
