"""Bone maps: which bone of a rig plays which part of the body (pure Python, no bpy).

A map names, per *role* (hips, spine, ..., thigh.L, shin.L, foot.L), the bone that plays it.
Presets know the names that Mixamo, Rigify, UE5 Manny/Quinn, SMPL and Anny give their
bones; ``resolve`` finds them on a rig, ``detect`` picks the preset that fits a rig best, and a
map can be saved and loaded as JSON to map any other rig.
"""

from __future__ import annotations

import json
from pathlib import Path

CENTRE = ["hips", "spine", "chest", "upper_chest", "neck", "head"]
LIMBS = ["shoulder", "upper_arm", "forearm", "hand", "thigh", "shin", "foot", "toes"]
ROLES = CENTRE + [f"{limb}.{side}" for side in "LR" for limb in LIMBS]
# Without these a transfer would leave most of the body at rest.
REQUIRED = ["hips", "upper_arm.L", "upper_arm.R", "forearm.L", "forearm.R",
            "thigh.L", "thigh.R", "shin.L", "shin.R"]  # fmt: skip
# The roles whose bones follow each role's bone, nearest first: the body segment a bone
# points along ends at the first of these that both rigs map (hips -> spine -> ...).
_NEXT = {
    "hips": ["spine", "chest", "upper_chest", "neck"], "spine": ["chest", "upper_chest", "neck"],
    "chest": ["upper_chest", "neck"], "upper_chest": ["neck", "head"], "neck": ["head"], "head": [],
    "shoulder": ["upper_arm"], "upper_arm": ["forearm"], "forearm": ["hand"], "hand": [],
    "thigh": ["shin"], "shin": ["foot"], "foot": ["toes"], "toes": [],
}  # fmt: skip


def segment_ends(role: str) -> list[str]:
    """The roles where ``role``'s body segment may end, nearest first."""
    base, _, side = role.partition(".")
    return [f"{r}.{side}" if side else r for r in _NEXT[base]]


def _sided(names: dict[str, str | list[str]], left: str, right: str) -> dict[str, list[str]]:
    """Preset table: limb names hold ``{s}``, replaced by each side's spelling."""
    out: dict[str, list[str]] = {}
    for role, cands in names.items():
        cands = [cands] if isinstance(cands, str) else cands
        if role in CENTRE:
            out[role] = cands
        else:
            out[f"{role}.L"] = [c.format(s=left) for c in cands]
            out[f"{role}.R"] = [c.format(s=right) for c in cands]
    return out


PRESETS: dict[str, dict[str, list[str]]] = {
    "ANNY": _sided({
        "hips": "root", "spine": "spine05", "chest": "spine03", "upper_chest": "spine01", "neck": "neck01",
        "head": "head", "shoulder": "clavicle.{s}", "upper_arm": "upperarm01.{s}", "forearm": "lowerarm01.{s}",
        "hand": "wrist.{s}", "thigh": "upperleg01.{s}", "shin": "lowerleg01.{s}", "foot": "foot.{s}",
        "toes": "toe3-1.{s}",
    }, "L", "R"),
    "SMPL": _sided({
        "hips": "pelvis", "spine": "spine1", "chest": "spine2", "upper_chest": "spine3", "neck": "neck",
        "head": "head", "shoulder": "{s}_collar", "upper_arm": "{s}_shoulder", "forearm": "{s}_elbow",
        "hand": "{s}_wrist", "thigh": "{s}_hip", "shin": "{s}_knee", "foot": "{s}_ankle", "toes": "{s}_foot",
    }, "left", "right"),
    # Mixamo names carry a namespace ("mixamorig:", "mixamorig1:", ...), matched in resolve().
    "MIXAMO": _sided({
        "hips": "Hips", "spine": "Spine", "chest": "Spine1", "upper_chest": "Spine2", "neck": "Neck",
        "head": "Head", "shoulder": "{s}Shoulder", "upper_arm": "{s}Arm", "forearm": "{s}ForeArm",
        "hand": "{s}Hand", "thigh": "{s}UpLeg", "shin": "{s}Leg", "foot": "{s}Foot", "toes": "{s}ToeBase",
    }, "Left", "Right"),
    # The generated rig's FK controls; "torso" moves and turns the whole body.
    "RIGIFY": _sided({
        "hips": "torso", "spine": "spine_fk.001", "chest": "spine_fk.002", "upper_chest": "spine_fk.003",
        "neck": "neck", "head": "head", "shoulder": "shoulder.{s}", "upper_arm": "upper_arm_fk.{s}",
        "forearm": "forearm_fk.{s}", "hand": "hand_fk.{s}", "thigh": "thigh_fk.{s}", "shin": "shin_fk.{s}",
        "foot": "foot_fk.{s}", "toes": ["toe_fk.{s}", "toe.{s}"],
    }, "L", "R"),
    # UE5 Manny/Quinn (spine_01..05); UE4's mannequin (spine_01..03) maps through the same names.
    "UE5": _sided({
        "hips": "pelvis", "spine": "spine_01", "chest": "spine_03", "upper_chest": ["spine_05"],
        "neck": "neck_01", "head": "head", "shoulder": "clavicle_{s}", "upper_arm": "upperarm_{s}",
        "forearm": "lowerarm_{s}", "hand": "hand_{s}", "thigh": "thigh_{s}", "shin": "calf_{s}",
        "foot": "foot_{s}", "toes": "ball_{s}",
    }, "l", "r"),
}  # fmt: skip
PRESET_LABELS = {"ANNY": "Anny", "SMPL": "SMPL", "MIXAMO": "Mixamo", "RIGIFY": "Rigify", "UE5": "UE5 Manny/Quinn"}


class BoneMapError(ValueError):
    """A map that cannot be used; the message says what to do."""


def _key(name: str) -> str:
    """Names compare without a namespace prefix ("mixamorig:Hips") and without case."""
    return name.rsplit(":", 1)[-1].lower()


def resolve(preset: str, bone_names: list[str]) -> dict[str, str]:
    """The roles of ``preset`` found on a rig with ``bone_names``: role -> the rig's bone name."""
    exact = set(bone_names)
    loose: dict[str, str] = {}
    for name in bone_names:
        loose.setdefault(_key(name), name)
    found = {}
    for role, cands in PRESETS[preset].items():
        for cand in cands:
            name = cand if cand in exact else loose.get(_key(cand))
            if name is not None:
                found[role] = name
                break
    return found


def detect(bone_names: list[str]) -> tuple[str, dict[str, str]]:
    """The preset that finds the most roles on the rig, and its map; ("", {}) if none fits."""
    best = ("", {})
    for preset in PRESETS:
        found = resolve(preset, bone_names)
        if all(r in found for r in REQUIRED) and len(found) > len(best[1]):
            best = (preset, found)
    return best


def expected_bones() -> str:
    """The roles a map must fill, with the names presets give them (for error messages)."""
    return ", ".join(f"{role} ({PRESETS['MIXAMO'][role][0]})" for role in REQUIRED)


def check(mapping: dict[str, str], bone_names: list[str], rig: str) -> None:
    """Raise BoneMapError if the map names bones the rig lacks or misses a required role."""
    missing = sorted({b for b in mapping.values() if b not in set(bone_names)})
    if missing:
        raise BoneMapError(f"The bone map names bones that {rig} lacks: {', '.join(missing)}; fix the map.")
    unmapped = [r for r in REQUIRED if r not in mapping]
    if unmapped:
        raise BoneMapError(f"The bone map leaves {', '.join(unmapped)} of {rig} unmapped; map them in the panel.")


def save(mapping: dict[str, str], path: str | Path) -> None:
    data = {"format": "human_recon.bonemap", "version": 1, "bones": {r: mapping[r] for r in ROLES if r in mapping}}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load(path: str | Path) -> dict[str, str]:
    """A map saved by ``save`` (or written by hand: {"bones": {role: bone name}})."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoneMapError(f"{p.name} is not a bone map (JSON) file ({exc}).") from None
    bones = data.get("bones") if isinstance(data, dict) else None
    if not isinstance(bones, dict) or not all(isinstance(v, str) for v in bones.values()):
        raise BoneMapError(f'{p.name} has no "bones" table of role -> bone name; save a map from the panel first.')
    unknown = sorted(set(bones) - set(ROLES))
    if unknown:
        raise BoneMapError(f"{p.name} names unknown roles {', '.join(unknown)}; roles are {', '.join(ROLES)}.")
    return {r: bones[r] for r in ROLES if bones.get(r)}
