"""Per-target recipes: each target's artifacts are built with the int8 recipe of its own ISA and runtime.

A format's build of one precision may depend on the ISA family of the target it is for (ONNX static int8: the
preset of :mod:`edgekit.quantization.presets`; OpenVINO int8: NNCF's overflow fix on CPUs whose u8 x s8 kernels
saturate). The adapter says so with an optional ``recipe_family(precision, options, isa_preset) -> str | None``
method: the name of the recipe the build will use for that ISA family, or None when the build does not depend
on it (fp16, TFLite, the ISA-independent kinds). :func:`plan_variants` groups the run's targets by that name:
one build per distinct recipe, shared by the targets that want the same one. Where a format+precision has
several variants, each file name carries its recipe (``model.int8-arm64.onnx``) and every target is given only
its own (:func:`artifacts_for`); with one, the name stays plain (``model.int8.onnx``) and the recipe is in
the sidecar and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.artifacts import Artifact
from edgekit.registry import formats_of
from edgekit.targets import Target
from edgekit.types import Format, Precision

#: The recipe key in an artifact's recipe: the family it was built for (absent: no ISA dependence).
RECIPE_KEY = "isa_recipe"


@dataclass(frozen=True)
class Variant:
    """One build of a format+precision: the recipe ``family`` (None: the build does not depend on the ISA),
    the ISA preset handed to the build, the targets it is for, and whether its file name carries the family."""

    format: Format
    precision: Precision
    family: str | None
    isa_preset: str
    targets: tuple[str, ...]
    named: bool = False

    def file_name(self, plain: str) -> str:
        """``plain`` (``model.int8.onnx``) with the family before the extension where the name carries it
        (``model.int8-arm64.onnx``)."""
        if not self.named or self.family is None:
            return plain
        stem, dot, ext = plain.rpartition(".")
        return f"{stem}-{self.family}{dot}{ext}"


def recipe_family(adapter: object, precision: Precision, options: object, isa_preset: str) -> str | None:
    """What ``adapter`` says its build of ``precision`` depends on for ISA family ``isa_preset`` (None where it
    has no ``recipe_family`` method: its builds are the same for every target)."""
    ask = getattr(adapter, "recipe_family", None)
    return ask(precision, options, isa_preset) if callable(ask) else None


def takes(target: Target, fmt: Format, precision: Precision) -> bool:
    """Whether one of ``target``'s runtimes (or estimators) takes ``fmt`` artifacts of ``precision``."""
    return any(fmt.value in formats_of(r.name) and precision in r.precisions for r in target.runtimes)


def plan_variants(fmt: Format, precision: Precision, targets: Sequence[Target], adapter: object, options: object,
                  default_preset: str, also: Sequence[Target] = ()) -> list[Variant]:
    """The builds of ``fmt`` ``precision`` this run needs: one per distinct recipe family among the targets that
    take it (in target order); one build with ``default_preset`` when the build does not depend on the ISA or
    no target takes it (the user asked for the format anyway). ``also``: targets of an earlier run in the same
    folder whose report this run adds to (:mod:`edgekit.report.merge`): they count for the names (a recipe of
    theirs next to another gets its own file name, so this run does not overwrite their artifact) but are not
    built for."""
    groups: dict[str | None, tuple[str, list[str]]] = {}
    current = {t.name for t in targets}
    for target in [*targets, *(t for t in also if t.name not in current)]:
        if not takes(target, fmt, precision):
            continue
        family = recipe_family(adapter, precision, options, target.int8_preset)
        _, names = groups.setdefault(family, (target.int8_preset, []))
        names.append(target.name)
    mine = {family: (preset, names) for family, (preset, names) in groups.items() if current & set(names)}
    if not mine:
        return [Variant(fmt, precision, recipe_family(adapter, precision, options, default_preset), default_preset,
                        ())]
    named = len(groups) > 1
    return [Variant(fmt, precision, family, preset, tuple(n for n in names if n in current), named)
            for family, (preset, names) in mine.items()]


def artifacts_for(target: Target, artifacts: Sequence[Artifact],
                  assigned: dict[str, tuple[str, ...]]) -> list[Artifact]:
    """``artifacts`` without the named variants built for other targets' recipes (``assigned``: artifact name ->
    the targets of its variant, for named variants only)."""
    return [a for a in artifacts if a.name not in assigned or target.name in assigned[a.name]]


def recipe_notes(variants: Sequence[Variant], targets: Sequence[Target], why: dict[str, str]) -> list[str]:
    """One report line per target whose builds depend on its ISA: the recipe it got, why, and the artifacts
    built with it (``why`` maps an ISA preset to its reason)."""
    lines: list[str] = []
    for target in targets:
        mine = [v for v in variants if v.family is not None and target.name in v.targets]
        if not mine:
            continue
        isa = ", ".join(target.isa) or "no ISA features declared"
        parts = [f"{v.format.value} {v.precision.value}: {v.family}" + (" (own build)" if v.named else "")
                 for v in mine]
        lines.append(f"int8 recipe of {target.name} ({target.arch}; {isa}): ISA family '{target.int8_preset}' "
                     f"({why.get(target.int8_preset, 'no reason recorded')}) -> " + "; ".join(parts))
    return lines


def without_unavailable_bf16(precisions: tuple[Precision, ...], targets: Sequence[Target],
                             notes: list[str]) -> tuple[Precision, ...]:
    """The default ``precisions`` without bf16 when no target of the run that takes bf16 has AVX-512 BF16 / AMX-BF16
    (a note says so in ``notes``)."""
    if Precision.BF16 not in precisions:
        return precisions
    wanting = [t for t in targets if any(Precision.BF16 in r.precisions for r in t.runtimes)]
    if any(t.has_bf16 for t in wanting):
        return precisions
    notes.append("bf16 not built: not available here: " + ("; ".join(
        f"{t.name} has no AVX-512 BF16 / AMX-BF16 (its ISA: {', '.join(t.isa) or 'none declared'})"
        for t in wanting) or "no target of the run runs bf16"))
    return tuple(p for p in precisions if p is not Precision.BF16)
