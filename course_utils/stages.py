"""The checkpoint chain: save, load and rebuild the stages the chapters hand to each other.

A stage is a folder, ``checkpoints/<profile>/<name>/`` (or ``data/<profile>/<name>/`` for
data), holding its files and a ``stage.json`` that records, for every file, its size and
SHA-256, plus the model shape, the tokenizer hash, the profile, the parent stages and the
metrics. Weights are safetensors, everything else JSON: loading never unpickles anything.

- :func:`save_stage` writes into a temporary folder and renames it into place, so an
  interrupted save leaves the previous version of the stage intact.
- :func:`load_stage` checks every file against ``stage.json`` and raises an error that
  names the notebook to run when something is missing, corrupt or stale.
- :func:`ensure_stage` loads a stage, or rebuilds it (and any missing parents) headless
  with the same code the notebook runs, so any chapter can start cold.
- ``python -m course_utils.stages pack <profile> FILE`` / ``unpack FILE`` carry built stages
  from one machine to others (a workshop's prebuilt stages): see :mod:`course_utils.stage_archive`.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from . import config

FORMAT_VERSION = 1
MANIFEST = "stage.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"

FileContent = Union[bytes, str, Callable[[Path], None]]


# ----------------------------------------------------------------------------- errors

class StageError(RuntimeError):
    """Base class: something is wrong with a stage on disk."""


class StageMissingError(StageError):
    pass


class StageCorruptError(StageError):
    pass


class StageMismatchError(StageError):
    pass


# ----------------------------------------------------------------------------- the chain

@dataclass(frozen=True)
class StageSpec:
    name: str
    notebook: str  # the chapter that builds it
    parents: tuple[str, ...]
    builder: str  # "module:function", imported only when a rebuild is needed
    root: str = "checkpoints"  # or "data"
    description: str = ""
    # Raised whenever a change to the course's data or recipe changes what the builder makes,
    # so a stage built by an older version of the course is rebuilt instead of silently used.
    recipe_version: int = 1


STAGES: dict[str, StageSpec] = {}


def register_stage(name, notebook, parents, builder, root="checkpoints", description="", recipe_version=1):
    STAGES[name] = StageSpec(name, notebook, tuple(parents), builder, root, description, recipe_version)


# The whole chain as the course plan draws it. A chapter that is not written yet has its
# builder missing; ensure_stage then says which notebook to run.
register_stage("clean", "01_data_cleaning.ipynb", (), "course_utils.cleaning:build_clean_stage",
               root="data", description="the clean pretraining corpus")
register_stage("tokenizer", "02_tokenization.ipynb", ("clean",), "course_utils.tokenizer:build_tokenizer_stage",
               description="byte-level BPE tokenizer")
register_stage("base", "04_pretraining.ipynb", ("tokenizer", "clean"), "course_utils.pretrain:build_base_stage",
               description="the pretrained base model")
register_stage("sft", "06_sft.ipynb", ("base",), "course_utils.sft:build_sft_stage",
               description="the chat model after supervised fine-tuning", recipe_version=5)
register_stage("sft_tools", "07_hallucination_and_tools.ipynb", ("sft",), "course_utils.sft:build_sft_tools_stage",
               description="the chat model that says 'I don't know' and calls a calculator", recipe_version=5)
register_stage("reward", "08_human_preferences.ipynb", ("sft_tools",), "course_utils.reward:build_reward_stage",
               description="the reward model learned from rater comparisons", recipe_version=7)
register_stage("rlhf", "09_rlhf_and_dpo.ipynb", ("sft_tools", "reward"), "course_utils.rl:build_rlhf_stage",
               description="the chat model after PPO against the reward model", recipe_version=7)
# DPO needs no reward model, but it trains on the same comparisons, stored with stage reward.
register_stage("dpo", "09_rlhf_and_dpo.ipynb", ("sft_tools", "reward"), "course_utils.rl:build_dpo_stage",
               description="the chat model after direct preference optimisation", recipe_version=6)
register_stage("reasoning", "10_reasoning.ipynb", ("rlhf",), "course_utils.grpo:build_reasoning_stage",
               description="the chat model after a warm-up on worked solutions and GRPO on word problems",
               recipe_version=2)
register_stage("vision", "15_vision.ipynb", ("sft_tools",), "course_utils.vision:build_vision_stage",
               description="the chat model with a vision tower: it answers questions about pictures")


def spec(name: str) -> StageSpec:
    if name not in STAGES:
        raise KeyError(f"Unknown stage {name!r}. Known stages: {', '.join(STAGES)}")
    return STAGES[name]


def stage_dir(name: str) -> Path:
    root = config.data_dir() if spec(name).root == "data" else config.checkpoints_dir()
    return root / name


def _run_hint(name: str) -> str:
    s = spec(name)
    return (f"Run notebooks/{s.notebook} (profile '{config.profile()}'), "
            f"or call course_utils.stages.ensure_stage({name!r}) to rebuild it headless.")


# ----------------------------------------------------------------------------- hashing

def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- save

def save_stage(name: str, files: dict[str, FileContent], meta: dict | None = None) -> Path:
    """Write a stage atomically.

    ``files`` maps file names to bytes, text, or a function that writes the file at the
    path it is given (e.g. ``lambda p: safetensors.torch.save_model(model, p)``).
    ``meta`` is any JSON-able information (model config, metrics, ...) kept in stage.json.
    """
    spec(name)  # unknown names fail before anything is written
    final = stage_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest_files = {}
        for fname, content in files.items():
            if "/" in fname or fname == MANIFEST:
                raise ValueError(f"Bad stage file name {fname!r}")
            path = tmp / fname
            if callable(content):
                content(path)
            elif isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                path.write_bytes(content)
            manifest_files[fname] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        manifest = {
            "stage": name,
            "format": FORMAT_VERSION,
            "profile": config.profile(),
            "parents": list(spec(name).parents),
            "created_unix": round(time.time(), 3),
            "files": manifest_files,
            **({"tokenizer_sha256": manifest_files[TOKENIZER_FILE]["sha256"]} if TOKENIZER_FILE in manifest_files else {}),
            **(meta or {}),
            "recipe_version": spec(name).recipe_version,  # after meta: a builder cannot overwrite it
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        _fsync_dir(tmp)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _fsync_dir(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _swap_into_place(tmp: Path, final: Path) -> None:
    # A folder cannot be atomically replaced by another, so the old one is first renamed
    # aside; _recover() puts it back if we are stopped between the two renames.
    old = final.parent / f".old-{final.name}"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _recover(name: str) -> None:
    final = stage_dir(name)
    old = final.parent / f".old-{final.name}"
    if not final.exists() and old.exists():
        os.replace(old, final)


# ----------------------------------------------------------------------------- load

@dataclass
class Stage:
    """A stage on disk whose files have been checked against its manifest."""

    name: str
    dir: Path
    meta: dict = field(repr=False)

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})

    @property
    def model_config(self) -> dict:
        return self.meta.get("model_config", {})

    def path(self, fname: str) -> Path:
        if fname not in self.meta["files"]:
            raise StageCorruptError(f"Stage {self.name!r} has no file {fname!r}. {_run_hint(self.name)}")
        return self.dir / fname

    def tokenizer(self):
        from .tokenizer import Tokenizer

        return Tokenizer.load(self.path(TOKENIZER_FILE))

    def load_weights(self, model, fname: str = WEIGHTS_FILE) -> None:
        """Load weights into ``model`` after checking every tensor's name and shape."""
        from safetensors import safe_open
        from safetensors.torch import load_model

        path = self.path(fname)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        with safe_open(str(path), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        for key, shape in stored.items():
            if key in expected and expected[key] != shape:
                raise StageMismatchError(
                    f"Stage {self.name!r}: tensor {key!r} has shape {shape} on disk but the model expects "
                    f"{expected[key]}. The checkpoint was made with a different model configuration. "
                    f"{_run_hint(self.name)}")
        unknown = sorted(set(stored) - set(expected))
        if unknown:
            raise StageMismatchError(
                f"Stage {self.name!r} holds tensors the model does not have: {unknown[:5]}. {_run_hint(self.name)}")
        missing, _ = load_model(model, str(path), strict=False)
        # safetensors drops one name of each tied pair when saving; anything else missing is an error.
        tied = {k for k in missing if _is_tied(model, k)}
        if set(missing) - tied:
            raise StageMismatchError(
                f"Stage {self.name!r} lacks tensors the model needs: {sorted(set(missing) - tied)[:5]}. "
                f"{_run_hint(self.name)}")


def _is_tied(model, key: str) -> bool:
    tensors = model.state_dict(keep_vars=True)
    return any(other != key and t.data_ptr() == tensors[key].data_ptr() for other, t in tensors.items())


def load_stage(name: str, check_tokenizer: bool = True) -> Stage:
    """Open a stage after checking it; raise a StageError that says what to run otherwise."""
    spec(name)
    _recover(name)
    folder = stage_dir(name)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise StageMissingError(f"Stage {name!r} ({spec(name).description}) was not found in {folder}. {_run_hint(name)}")
    try:
        meta = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = meta["files"]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise StageCorruptError(f"Stage {name!r}: {manifest_path} is unreadable ({exc}). {_run_hint(name)}") from exc
    if meta.get("format") != FORMAT_VERSION or meta.get("stage") != name:
        raise StageMismatchError(
            f"Stage {name!r}: {manifest_path} is format {meta.get('format')} of stage {meta.get('stage')!r}, "
            f"expected format {FORMAT_VERSION} of stage {name!r}. {_run_hint(name)}")
    if meta.get("recipe_version", 1) != spec(name).recipe_version:
        raise StageMismatchError(
            f"Stage {name!r} in {folder} was built by another version of the course (recipe version "
            f"{meta.get('recipe_version', 1)}, now {spec(name).recipe_version}): its data or training recipe "
            f"has changed. "
            f"{_run_hint(name)}")
    if meta.get("profile") != config.profile():
        raise StageMismatchError(
            f"Stage {name!r} in {folder} was built in profile {meta.get('profile')!r} but the active profile is "
            f"{config.profile()!r}. {_run_hint(name)}")
    for fname, info in files.items():
        path = folder / fname
        if not path.exists():
            raise StageCorruptError(f"Stage {name!r}: file {fname} is missing. {_run_hint(name)}")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise StageCorruptError(
                f"Stage {name!r}: {fname} is {size} bytes, expected {info['bytes']} (truncated or overwritten). "
                f"{_run_hint(name)}")
        if sha256_file(path) != info["sha256"]:
            raise StageCorruptError(f"Stage {name!r}: {fname} does not match its checksum (corrupt). {_run_hint(name)}")
    stage = Stage(name, folder, meta)
    if check_tokenizer and name != "tokenizer" and "tokenizer_sha256" in meta:
        _check_same_tokenizer(stage)
    return stage


def _check_same_tokenizer(stage: Stage) -> None:
    tok_manifest = stage_dir("tokenizer") / MANIFEST
    if not tok_manifest.exists():
        return  # nothing to compare with; the stage carries its own tokenizer
    current = json.loads(tok_manifest.read_text(encoding="utf-8")).get("tokenizer_sha256")
    if current and current != stage.meta["tokenizer_sha256"]:
        raise StageMismatchError(
            f"Stage {stage.name!r} was trained with a different tokenizer than the one in {tok_manifest.parent} "
            f"(hash {stage.meta['tokenizer_sha256'][:12]} vs {current[:12]}): the tokenizer was retrained since. "
            f"{_run_hint(stage.name)}")


def stage_exists(name: str) -> bool:
    try:
        load_stage(name)
        return True
    except StageError:
        return False


# ----------------------------------------------------------------------------- ensure

def _builder(name: str) -> Callable[[], object]:
    module_name, func_name = spec(name).builder.split(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise StageMissingError(
            f"Stage {name!r} cannot be rebuilt automatically yet ({exc}). Run notebooks/{spec(name).notebook}.") from exc


def build_plan(name: str) -> list[str]:
    """Stages to build, parents first, so that ``name`` can be loaded."""
    plan: list[str] = []

    def visit(n: str) -> None:
        for parent in spec(n).parents:
            visit(parent)
        # A rebuilt parent makes its children stale, so they are rebuilt too.
        parent_rebuilt = any(p in plan for p in spec(n).parents)
        if n not in plan and (parent_rebuilt or not stage_exists(n)):
            plan.append(n)

    visit(name)
    return plan


def ensure_stage(name: str) -> Stage:
    """Load ``name``, rebuilding it and any missing or stale parents first if needed.

    A corrupt stage is moved aside (``<name>.corrupt-<time>``), never deleted.
    """
    try:
        return load_stage(name)
    except StageMissingError:
        pass
    except StageCorruptError as exc:
        aside = stage_dir(name).with_name(f"{name}.corrupt-{int(time.time())}")
        os.replace(stage_dir(name), aside)
        print(f"{exc}\nMoved the corrupt stage to {aside} and rebuilding it.")
    except StageMismatchError as exc:
        print(f"{exc}\nRebuilding it.")
    from tqdm.auto import tqdm

    plan = build_plan(name)
    if name not in plan:
        plan.append(name)
    bar = tqdm(plan, desc="rebuilding stages", unit="stage")
    for stage_name in bar:
        bar.set_postfix_str(f"{stage_name} (notebook {spec(stage_name).notebook})")
        _builder(stage_name)()
    return load_stage(name)


def status() -> list[dict]:
    """One row per stage of the chain: where it lives and whether it is ready to load."""
    rows = []
    for name, s in STAGES.items():
        try:
            load_stage(name)
            state = "ready"
        except StageMissingError:
            state = "missing"
        except StageError as exc:
            state = f"needs rebuild: {type(exc).__name__}"
        rows.append({"stage": name, "made by": s.notebook, "from": ", ".join(s.parents) or "-",
                     "state": state, "folder": str(stage_dir(name))})
    return rows


if __name__ == "__main__":  # python -m course_utils.stages pack|unpack: see stage_archive
    import sys

    from course_utils.stage_archive import main

    sys.exit(main(sys.argv[1:]))
