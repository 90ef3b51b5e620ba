"""The dataset doctor: what is wrong with, or worth knowing about, a source's images, each kind with its count
and a few example paths.

Two kinds make a file unusable (``unreadable``, ``not_image``); the others are fixed on the way in
(``transparent``, ``exif_rotated``, ...) or only told (``duplicate``, ``far_from_square``,
``few_images_class``, ``deep_nesting``). The report is part of a prepared dataset's manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

EXAMPLES_KEPT = 5
FEW_IMAGES = 10  # a class with fewer images than this can hardly be learnt; below a tenth of the mean too
FEW_IMAGES_FRACTION_OF_MEAN = 0.1
MAX_EXAMPLE_CHARS = 300

# Each kind of finding, in the order a report lists them, and what it says of the files it counts.
FINDING_WORDS: dict[str, str] = {
    "unreadable": "unreadable or truncated: left out",
    "not_image": "not an image: left out",
    "transparent": "transparent (RGBA, LA or a palette with transparency): composited on the background",
    "palette": "palette images: converted",
    "high_bit_depth": "16-bit or floating-point pixels: scaled to 8 bits",
    "cmyk": "CMYK: converted to RGB",
    "greyscale": "greyscale among colour: copied to all 3 channels",
    "exif_rotated": "EXIF orientation: turned upright",
    "upscaled": "smaller than the target size: upscaled",
    "far_from_square": "aspect ratio beyond 2:1: much is cropped, padded or stretched",
    "duplicate": "exact duplicates of another file: kept",
    "few_images_class": f"classes with fewer than {FEW_IMAGES} usable images or a tenth of the mean",
    "deep_nesting": "nested deeper than class folders: the first folder is the class",
}
UNUSABLE = ("unreadable", "not_image")


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1)
    examples: tuple[str, ...] = Field(max_length=EXAMPLES_KEPT)


class DoctorReport(BaseModel):
    """What the doctor found in a source: ``files`` looked at, ``usable`` images, and each finding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: int = Field(ge=0)
    usable: int = Field(ge=0)
    findings: dict[str, Finding] = Field(default_factory=dict, max_length=len(FINDING_WORDS))

    def lines(self) -> list[str]:
        """The report in words: one line per finding, with its count and examples."""
        lines = [f"{self.usable} of {self.files} files are usable images"]
        for kind, words in FINDING_WORDS.items():
            finding = self.findings.get(kind)
            if finding is not None:
                examples = ", ".join(finding.examples)
                lines.append(f"{finding.count} {words} (e.g. {examples})")
        return lines


class DoctorTally:
    """Findings counted while a source's files are decoded, in any order; :meth:`report` sorts the examples."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, list[str]] = {}
        self._digests: list[tuple[str, str]] = []
        self.files = 0
        self.usable = 0

    def add(self, kind: str, example: str) -> None:
        self._counts[kind] += 1
        self._examples.setdefault(kind, []).append(example[:MAX_EXAMPLE_CHARS])

    def file_seen(self, name: str, findings: Sequence[str], digest: str | None) -> None:
        self.files += 1
        for kind in findings:
            self.add(kind, name)
        if not any(kind in UNUSABLE for kind in findings):
            self.usable += 1
        if digest is not None:
            self._digests.append((name, digest))

    def classes_counted(self, class_names: Sequence[str], usable_per_class: Sequence[int]) -> None:
        if not class_names:
            return
        mean = sum(usable_per_class) / len(class_names)
        for name, count in zip(class_names, usable_per_class, strict=True):
            if count < FEW_IMAGES or count < FEW_IMAGES_FRACTION_OF_MEAN * mean:
                self.add("few_images_class", f"{name} ({count})")

    def report(self) -> DoctorReport:
        """The findings so far, duplicates included (called once, when every file has been seen)."""
        # Judged in name order, whatever order the workers finished in: the first name is the original.
        first_with_digest: dict[str, str] = {}
        for name, digest in sorted(self._digests):
            original = first_with_digest.setdefault(digest, name)
            if original != name:
                self.add("duplicate", f"{name} = {original}")
        self._digests.clear()
        findings = {
            kind: Finding(count=self._counts[kind], examples=tuple(sorted(self._examples[kind])[:EXAMPLES_KEPT]))
            for kind in FINDING_WORDS
            if self._counts[kind]
        }
        return DoctorReport(files=self.files, usable=self.usable, findings=findings)
