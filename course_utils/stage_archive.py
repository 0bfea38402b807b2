"""Prebuilt stages for a workshop: every built stage of a profile in one archive, and back.

    python -m course_utils.stages pack cpu stages-cpu.tar.gz    # on a machine that ran the course
    python -m course_utils.stages unpack stages-cpu.tar.gz      # on each learner's laptop

``unpack`` restores the stages into the active profile's folders under ``COURSE_HOME``, where
``ensure_stage`` finds them and rebuilds nothing. Before it replaces anything it checks the whole
archive: its profile against the active one, the course's recipe version of every stage, the size
and SHA-256 of every file, and the name of every member: only plain files of known stages, in the
folder their stage belongs to. A tampered, truncated or foreign-profile archive is refused with a
clear error, and the stages already on disk stay as they were.

The archive is a gzipped tar holding ``course-stages.json`` (what it contains and every file's
checksum) and ``checkpoints/<stage>/<file>`` or ``data/<stage>/<file>`` for each stage: the same
files ``save_stage`` writes, so no file is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import time
import uuid
import zlib
from pathlib import Path

from . import __version__, config, stages

FORMAT = 1
KIND = "course-stages"
MANIFEST = "course-stages.json"
_MEMBER = re.compile(r"^(checkpoints|data)/([a-z][a-z0-9_]*)/([A-Za-z0-9_-][A-Za-z0-9._-]*)$")


class ArchiveError(stages.StageError):
    """An archive of stages that cannot be packed or must not be unpacked."""


# ----------------------------------------------------------------------------- pack

def pack(dest: str | Path) -> dict:
    """Write every stage that loads cleanly in the active profile into ``dest`` (a .tar.gz).
    Returns the archive's manifest."""
    dest = Path(dest)
    ready = [name for name in stages.STAGES if stages.stage_exists(name)]
    if not ready:
        raise ArchiveError(f"No built stages in profile '{config.profile()}' under {config.home()}: "
                           "run the chapters (or `make course`) first.")
    manifest = {"kind": KIND, "format": FORMAT, "profile": config.profile(), "smoke": config.smoke_run(),
                "course_version": __version__, "created_unix": round(time.time(), 3), "stages": {}}
    for name in ready:
        folder = stages.stage_dir(name)
        meta = json.loads((folder / stages.MANIFEST).read_text(encoding="utf-8"))
        files = {fname: {"bytes": info["bytes"], "sha256": info["sha256"]} for fname, info in meta["files"].items()}
        files[stages.MANIFEST] = {"bytes": (folder / stages.MANIFEST).stat().st_size,
                                  "sha256": stages.sha256_file(folder / stages.MANIFEST)}
        manifest["stages"][name] = {"root": stages.spec(name).root,
                                    "recipe_version": stages.spec(name).recipe_version, "files": files}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # Level 1: safetensors barely compress, and the corpus compresses well at any level.
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
            for name, entry in manifest["stages"].items():
                folder = stages.stage_dir(name)
                for fname in sorted(entry["files"]):
                    with open(folder / fname, "rb") as f:
                        _add_file(tar, f"{entry['root']}/{name}/{fname}", f, entry["files"][fname]["bytes"])
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, f, size: int) -> None:
    tar.addfile(_tarinfo(name, size), f)


# ----------------------------------------------------------------------------- unpack

def unpack(src: str | Path) -> list[str]:
    """Restore the stages in ``src`` into the active profile, or raise ArchiveError and change
    nothing. Returns the names of the stages restored."""
    src = Path(src)
    if not src.is_file():
        raise ArchiveError(f"No archive at {src}.")
    staging = config.home() / f".unpack-{uuid.uuid4().hex[:8]}"
    try:
        with tarfile.open(src, "r:gz") as tar:
            members = _checked_members(tar, src)
            manifest = _read_manifest(tar, members, src)
            _check_contents(manifest, members, src)
            _check_free_space(manifest, src)
            for name, entry in manifest["stages"].items():
                for fname, info in entry["files"].items():
                    arcname = f"{entry['root']}/{name}/{fname}"
                    _extract_checked(tar, members[arcname], staging / entry["root"] / name / fname, info, src)
        for name, entry in manifest["stages"].items():
            _check_stage_manifest(staging / entry["root"] / name, name, entry, manifest, src)
        _check_tokenizer_fits(staging, manifest, src)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveError(f"{src} is truncated or is not an archive of stages ({type(exc).__name__}: {exc}). "
                           "Copy it again; nothing was changed.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Everything checked: only now does a stage on disk get replaced, each one atomically.
    try:
        for name, entry in manifest["stages"].items():
            final = stages.stage_dir(name)
            final.parent.mkdir(parents=True, exist_ok=True)
            stages._swap_into_place(staging / entry["root"] / name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for name in manifest["stages"]:
        stages.load_stage(name)  # the same checks every chapter makes
    return list(manifest["stages"])


def _checked_members(tar: tarfile.TarFile, src: Path) -> dict[str, tarfile.TarInfo]:
    members = {}
    for m in tar.getmembers():  # reads the whole archive: a truncated one fails here
        if m.name != MANIFEST and not _MEMBER.match(m.name):
            raise ArchiveError(f"{src}: refusing member {m.name!r}: it would write outside the stage folders "
                               "(only checkpoints/<stage>/<file> and data/<stage>/<file> are allowed).")
        if not m.isfile():
            raise ArchiveError(f"{src}: refusing member {m.name!r}: not a plain file (a link, folder or device).")
        if m.name in members:
            raise ArchiveError(f"{src}: member {m.name!r} appears twice.")
        members[m.name] = m
    if MANIFEST not in members:
        raise ArchiveError(f"{src} has no {MANIFEST}: it is not an archive of course stages.")
    return members


def _read_manifest(tar: tarfile.TarFile, members: dict, src: Path) -> dict:
    if members[MANIFEST].size > 1 << 20:
        raise ArchiveError(f"{src}: {MANIFEST} is implausibly large.")
    try:
        manifest = json.loads(tar.extractfile(members[MANIFEST]).read().decode("utf-8"))
        stage_entries = manifest["stages"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{src}: {MANIFEST} is unreadable ({exc}).") from exc
    if manifest.get("kind") != KIND or manifest.get("format") != FORMAT or not isinstance(stage_entries, dict):
        raise ArchiveError(f"{src} is not an archive of course stages in format {FORMAT}.")
    active, smoke = config.profile(), config.smoke_run()
    if manifest.get("profile") != active or bool(manifest.get("smoke")) != smoke:
        made = f"{manifest.get('profile')}" + (" (smoke run)" if manifest.get("smoke") else "")
        raise ArchiveError(
            f"{src} holds stages of profile '{made}', but the active profile is '{active}'"
            f"{' (smoke run)' if smoke else ''}. Set COURSE_PROFILE={manifest.get('profile')} to unpack it, "
            f"or pack the stages of profile '{active}'. Nothing was changed.")
    return manifest


def _check_contents(manifest: dict, members: dict, src: Path) -> None:
    expected = {MANIFEST}
    for name, entry in manifest["stages"].items():
        if name not in stages.STAGES:
            raise ArchiveError(f"{src}: unknown stage {name!r} (this version of the course knows "
                               f"{', '.join(stages.STAGES)}).")
        if entry.get("root") != stages.spec(name).root:
            raise ArchiveError(f"{src}: stage {name!r} claims folder {entry.get('root')!r}, "
                               f"but it belongs in {stages.spec(name).root!r}.")
        if entry.get("recipe_version") != stages.spec(name).recipe_version:
            raise ArchiveError(
                f"{src}: stage {name!r} was built by another version of the course (recipe version "
                f"{entry.get('recipe_version')}, this course has {stages.spec(name).recipe_version}): "
                "pack it again with this version. Nothing was changed.")
        if stages.MANIFEST not in entry.get("files", {}):
            raise ArchiveError(f"{src}: stage {name!r} has no {stages.MANIFEST}.")
        for fname in entry["files"]:
            arcname = f"{entry['root']}/{name}/{fname}"
            if not _MEMBER.match(arcname):
                raise ArchiveError(f"{src}: refusing file name {fname!r} of stage {name!r}.")
            expected.add(arcname)
    if set(members) != expected:
        missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
        raise ArchiveError(f"{src} does not match its own list of files (missing: {missing[:5]}, "
                           f"not listed: {extra[:5]}): it was altered or cut short. Nothing was changed.")


def _check_free_space(manifest: dict, src: Path) -> None:
    needed = sum(info["bytes"] for e in manifest["stages"].values() for info in e["files"].values())
    config.home().mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(config.home()).free
    if needed * 2 > free:  # the staged copy and, until swapped, the old stages
        raise ArchiveError(f"{src} needs {needed * 2 / 1e6:.0f} MB free under {config.home()}, "
                           f"only {free / 1e6:.0f} MB are.")


def _extract_checked(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, info: dict, src: Path) -> None:
    if member.size != info["bytes"]:
        raise ArchiveError(f"{src}: {member.name} is {member.size} bytes, its checksum list says {info['bytes']}: "
                           "the archive was altered. Nothing was changed.")
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with tar.extractfile(member) as f, open(path, "wb") as out:
        while block := f.read(1 << 20):
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if h.hexdigest() != info["sha256"]:
        raise ArchiveError(f"{src}: {member.name} does not match its checksum: the archive is corrupt or was "
                           "altered. Nothing was changed.")


def _check_stage_manifest(folder: Path, name: str, entry: dict, manifest: dict, src: Path) -> None:
    try:
        meta = json.loads((folder / stages.MANIFEST).read_text(encoding="utf-8"))
        files = meta["files"]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{src}: the {stages.MANIFEST} of stage {name!r} is unreadable ({exc}).") from exc
    listed = {f: {"bytes": i["bytes"], "sha256": i["sha256"]} for f, i in entry["files"].items() if f != stages.MANIFEST}
    if (meta.get("stage") != name or meta.get("profile") != manifest["profile"]
            or meta.get("recipe_version", 1) != entry["recipe_version"]
            or {f: {"bytes": i.get("bytes"), "sha256": i.get("sha256")} for f, i in files.items()} != listed):
        raise ArchiveError(f"{src}: stage {name!r} disagrees with the archive's list (stage, profile, recipe or "
                           "checksums): the archive was altered. Nothing was changed.")


def _check_tokenizer_fits(staging: Path, manifest: dict, src: Path) -> None:
    # Stages trained on one tokenizer are useless beside another: an archive without the
    # tokenizer stage must match the tokenizer already on this machine.
    if "tokenizer" in manifest["stages"]:
        return
    local = stages.stage_dir("tokenizer") / stages.MANIFEST
    if not local.exists():
        return
    current = json.loads(local.read_text(encoding="utf-8")).get("tokenizer_sha256")
    for name, entry in manifest["stages"].items():
        meta = json.loads((staging / entry["root"] / name / stages.MANIFEST).read_text(encoding="utf-8"))
        if current and meta.get("tokenizer_sha256", current) != current:
            raise ArchiveError(f"{src}: stage {name!r} was trained with another tokenizer than the one in "
                               f"{local.parent}, and the archive has no tokenizer stage. Nothing was changed.")


# ----------------------------------------------------------------------------- command line

def main(argv: list[str]) -> int:
    usage = ("usage: python -m course_utils.stages pack <profile> FILE   (every built stage of that profile)\n"
             "       python -m course_utils.stages unpack FILE           (into the active profile, under COURSE_HOME)")
    if len(argv) == 3 and argv[0] == "pack":
        os.environ["COURSE_PROFILE"] = argv[1]
        start = time.perf_counter()
        try:
            manifest = pack(argv[2])
        except (stages.StageError, config.ProfileError) as exc:
            print(exc, file=sys.stderr)
            return 1
        size = Path(argv[2]).stat().st_size
        print(f"packed {len(manifest['stages'])} stages of profile '{manifest['profile']}' "
              f"({', '.join(manifest['stages'])}) into {argv[2]}: {size / 1e6:.1f} MB "
              f"in {time.perf_counter() - start:.1f} s")
        return 0
    if len(argv) == 2 and argv[0] == "unpack":
        start = time.perf_counter()
        try:
            restored = unpack(argv[1])
        except (stages.StageError, config.ProfileError) as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"restored {len(restored)} stages of profile '{config.profile()}' under {config.home()} "
              f"in {time.perf_counter() - start:.1f} s:")
        for row in stages.status():
            print(f"  {row['stage']:10s} {row['state']}")
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
