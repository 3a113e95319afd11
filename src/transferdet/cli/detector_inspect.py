"""``zoo inspect`` and ``zoo list`` for detector sources: a torchvision detection state dict or a run folder."""

from __future__ import annotations

import fnmatch
import json

from transferdet.cli.common import out_console


def detector_lines(pattern: str | None) -> list[str]:
    """torchvision's detection builders, each with what a whole transfer maps it onto."""
    from transferdet.models.native_detectors import NATIVE
    from transferdet.models.torchvision_detectors import MAPPED, detection_builders

    lines = []
    for name in detection_builders():
        spec = f"torchvision:{name}"
        if pattern and not fnmatch.fnmatch(spec, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"):
            continue
        if name in MAPPED:
            how = f"whole transfer onto {MAPPED[name][0]}"
        elif name in NATIVE:
            how = f"whole transfer, as torchvision builds it ({NATIVE[name][0]} heads)"
        else:
            how = "not a source: transferdet detects no keypoints"
        lines.append(f"{spec}  (detector, @FILE: {how})")
    return lines


def detector_summary(spec: str, source) -> dict:  # noqa: ANN001 - a DetectorSource
    """The parts a detector source holds, its classes and what a whole transfer carries over."""
    from transferdet.models.detector_transfer import class_layer, part_of

    parts: dict[str, int] = {}
    for key in source.state:
        parts[part_of(key)] = parts.get(part_of(key), 0) + 1
    specific = [k for k in source.state if class_layer(source.layout, k) is not None]
    return {
        "spec": spec,
        "detector": source.kind,
        "parts": parts,
        "tensors": len(source.state),
        "classes": len(source.classes) if source.classes is not None else source.record.get("num_classes"),
        "class_names": source.classes,
        "transfers_whole": len(source.state) - len(specific),
        "class_specific": sorted({k.rsplit(".", 1)[0] for k in specific}),
        "structure": {k: source.record.get(k) for k in ("fpn_channels", "anchors", "min_size", "max_size")},
    }


def print_detector(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    parts = ", ".join(f"{name} {count}" for name, count in summary["parts"].items())
    out_console.print(f"[bold]{summary['spec']}[/bold]: a {summary['detector']} detector, {summary['tensors']} tensors")
    out_console.print(f"parts: {parts}")
    names = summary["class_names"]
    shown = (
        ""
        if names is None
        else ": " + ", ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")
    )
    out_console.print(f"classes: {summary['classes']}{shown}")
    out_console.print(
        f"whole transfer carries {summary['transfers_whole']} tensors; re-initialised for the target's classes "
        f"(rows of equal names copied): {', '.join(summary['class_specific'])}"
    )
