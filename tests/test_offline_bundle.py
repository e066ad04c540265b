"""scripts/offline_bundle.py, gpu_bundle.sh and gpu_setup.sh: parts that fit one transfer, restored byte for byte,
and one-line refusals for a missing part, a corrupt part, bad profiles and a site folder of the user's."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "scripts" / "offline_bundle.py"


def _run(*args, cwd=ROOT, env=None):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.fixture
def files(tmp_path):
    rng = __import__("random").Random(0)
    out = []
    for name, size in [("big.whl", 2_500_000), ("mid.whl", 700_000), ("small.bin", 1_000), ("empty.txt", 0)]:
        p = tmp_path / "src" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
        out.append(p)
    return out


def _pack(files, out, part_mb="1"):
    return _run(sys.executable, str(TOOL), "pack", "--out", str(out), "--part-mb", part_mb,
                "--file", *[str(f) for f in files])


def test_parts_stay_under_the_limit_and_restore_byte_for_byte(files, tmp_path):
    out = tmp_path / "bundle"
    r = _pack(files, out)
    assert r.returncode == 0, r.stderr
    parts = sorted(out.glob("part-*"))
    assert len(parts) >= 3  # 2.5 MB must be split into pieces of at most 1 MB
    for part in parts:
        assert sum(f.stat().st_size for f in part.iterdir() if f.name != "MANIFEST.json") <= 1_000_000
    r = _run(sys.executable, str(TOOL), "restore", str(out), str(tmp_path / "dest"))
    assert r.returncode == 0, r.stderr
    for f in files:
        assert hashlib.sha256((tmp_path / "dest" / f.name).read_bytes()).digest() == hashlib.sha256(f.read_bytes()).digest()


def test_missing_or_corrupt_part_is_one_line_and_exit_1(files, tmp_path):
    out = tmp_path / "bundle"
    assert _pack(files, out).returncode == 0
    last = sorted(out.glob("part-*"))[-1]
    hidden = tmp_path / "hidden"
    last.rename(hidden)
    r = _run(sys.executable, str(TOOL), "restore", str(out), str(tmp_path / "d1"))
    assert r.returncode == 1 and last.name in r.stderr and len(r.stderr.strip().splitlines()) == 1
    hidden.rename(last)
    piece = next(p for p in sorted(out.glob("part-*/*")) if p.name != "MANIFEST.json" and p.stat().st_size > 0)
    data = bytearray(piece.read_bytes())
    data[0] ^= 0xFF
    piece.write_bytes(bytes(data))
    r = _run(sys.executable, str(TOOL), "restore", str(out), str(tmp_path / "d2"))
    assert r.returncode == 1 and "sha256" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d2" / piece.name.split(".piece-")[0]).exists()  # no corrupt file left behind


def test_pack_refuses_an_existing_output(files, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    r = _pack(files, out)
    assert r.returncode == 2 and "exists" in r.stderr
    assert (out / "keep.txt").read_text() == "user data"


@pytest.mark.parametrize("profiles, message", [
    (["nosuch"], "unknown profile 'nosuch'"),
    (["trl", "unsloth"], "different versions of: trl"),
])
def test_gpu_bundle_refuses_bad_profiles_before_downloading(tmp_path, profiles, message):
    r = _run("bash", str(ROOT / "scripts" / "gpu_bundle.sh"), *profiles, env={"OUT": str(tmp_path / "b")})
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "b").exists()


def test_gpu_setup_never_replaces_a_folder_it_did_not_make(files, tmp_path):
    bundle = tmp_path / "bundle"
    assert _pack(files, bundle).returncode == 0
    site = tmp_path / "site"
    site.mkdir()
    (site / "mine.py").write_text("x = 1\n")
    r = _run("bash", str(ROOT / "scripts" / "gpu_setup.sh"), str(bundle), env={"SITE": str(site)})
    assert r.returncode == 2 and "not made by gpu_setup.sh" in r.stderr
    assert (site / "mine.py").read_text() == "x = 1\n"


def _wheel(path: Path, name: str) -> Path:
    """A minimal pure-Python wheel that pip installs with --no-deps."""
    import zipfile
    whl = path / f"{name}-0.1-py3-none-any.whl"
    info = f"{name}-0.1.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{name}/__init__.py", "VALUE = 7\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return whl


def test_gpu_setup_installs_the_bundle_and_its_marker_names_it(tmp_path):
    """The marker is the sha256 of the bundle's manifest, so a driver can tell a site of another bundle from its own;
    a second bundle replaces a site the script made, with the new bundle's name in the marker."""
    (tmp_path / "src").mkdir()
    site = tmp_path / "site"
    for name in ("stand_in_one", "stand_in_two"):
        bundle = tmp_path / f"bundle-{name}"
        assert _pack([_wheel(tmp_path / "src", name)], bundle).returncode == 0
        r = _run("bash", str(ROOT / "scripts" / "gpu_setup.sh"), str(bundle), env={"SITE": str(site)})
        assert r.returncode == 0, r.stderr
        manifest = (bundle / "part-01" / "MANIFEST.json").read_bytes()
        assert (site / ".gpu_setup").read_text().strip() == hashlib.sha256(manifest).hexdigest()
        assert (site / name / "__init__.py").is_file()
    assert not (site / "stand_in_one").exists()
