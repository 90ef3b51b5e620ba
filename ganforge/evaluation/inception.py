"""Inception-v3 features through torch-fidelity: the network whose FID, KID and Inception Score papers report.

The weights are torch-fidelity's port of TensorFlow's 2015-12-05 Inception graph, one known file.
Wherever it comes from (``$GANFORGE_INCEPTION_WEIGHTS``, ganforge's cache, the torch hub folder
where torch-fidelity itself keeps it, or a download into ganforge's cache), its SHA-256 is checked
before use, and it is read by torch's weights-only unpickler, which builds tensors and runs no
code. torch-fidelity would read a weights file with the full unpickler, so it never sees the file:
it is handed the checked tensors, serialised again in memory.

Images go in as 8-bit RGB (a grayscale channel repeated three times) at their own size; the
network resizes them to 299x299 with torch-fidelity's TensorFlow-1-compatible bilinear
interpolation, as the reference implementations do.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge.contracts import FeatureSet
from ganforge.downloads import DownloadError, RemoteFile, download, file_url, mirrors
from ganforge.environment import path_setting, text_setting
from ganforge.errors import UsageError, first_line, quote
from ganforge.evaluation.domain_classifier import numerics
from ganforge.evaluation.domain_split import ImageSet

WEIGHTS_ENV = "GANFORGE_INCEPTION_WEIGHTS"
SHA256_ENV = "GANFORGE_INCEPTION_SHA256"
INSTALL_HINT = "pip install 'ganforge[inception]'"
WEIGHTS_BASE_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0"
# The SHA-256 of torch-fidelity's released file; its first 8 digits are the ones in the file's name,
# as torch.hub names files. The size is about that of its 23,885,486 float32 values and the pickle
# around them: it only bounds a download (twice it) and sizes the progress bar; the hash decides.
STANDARD_WEIGHTS = RemoteFile(
    "weights-inception-2015-12-05-6726825d.pth",
    md5=None,
    published_bytes=95_700_000,
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
)
WEIGHTS_FOLDER = "inception"  # under the cache folder
POOL_FEATURES, LOGITS = "2048", "logits_unbiased"  # torch-fidelity's names of the layers FID and IS read
EXTRACT_BATCH = 64  # torch-fidelity's own batch size
HASH_CHUNK = 2**20


class InceptionWeightsError(UsageError):
    """Inception weights that are missing, are not the expected file, or cannot be read; the message says which."""


@dataclass(frozen=True)
class InceptionWeights:
    """A checked weights file: where it is, its SHA-256, and whether it is the standard file papers use."""

    path: Path
    sha256: str
    standard: bool


def require_torch_fidelity(purpose: str) -> Any:
    """The torch_fidelity module, or a clear error saying how to install it."""
    try:
        import torch_fidelity
    except ImportError:
        raise UsageError(f"{purpose} needs torch-fidelity, which is not installed: {INSTALL_HINT}") from None
    return torch_fidelity


def expected_sha256() -> str:
    """The SHA-256 the weights must have: ``$GANFORGE_INCEPTION_SHA256`` where set (another file of one's own
    making, whose scores compare with no paper's), else the standard file's."""
    configured = text_setting(SHA256_ENV).lower()
    if not configured:
        return str(STANDARD_WEIGHTS.sha256)
    if len(configured) != 64 or any(digit not in "0123456789abcdef" for digit in configured):
        raise InceptionWeightsError(f"${SHA256_ENV} is {quote(configured)}: expected a SHA-256, 64 hexadecimal digits")
    return configured


def weights_places(cache_dir: Path) -> list[Path]:
    """Where the file is looked for when ``$GANFORGE_INCEPTION_WEIGHTS`` is not set, in turn."""
    name = STANDARD_WEIGHTS.name
    return [cache_dir / WEIGHTS_FOLDER / name, Path(torch.hub.get_dir()) / "checkpoints" / name]


def find_weights(cache_dir: Path, log: Callable[[str], None] | None = None) -> InceptionWeights:
    """The weights file, checked: the one on disk (``weights_on_disk``), else downloaded into the first of
    ``weights_places``."""
    expected = expected_sha256()
    path, found_by = weights_on_disk(cache_dir)
    if path is not None:
        return checked_weights(path, expected, found_by=found_by)
    if expected != STANDARD_WEIGHTS.sha256:
        raise InceptionWeightsError(
            f"${SHA256_ENV} asks for weights of one's own, which ganforge cannot download; point ${WEIGHTS_ENV} at them"
        )
    return checked_weights(_download(weights_places(cache_dir), log), expected, found_by="the download")


def weights_on_disk(cache_dir: Path) -> tuple[Path | None, str]:
    """The weights file ganforge would use, not yet checked, and how it was found: the one
    ``$GANFORGE_INCEPTION_WEIGHTS`` names, else the first found of ``weights_places``; (None, "") for none."""
    path = path_setting(WEIGHTS_ENV)
    if path is not None:
        if not path.is_file():
            raise InceptionWeightsError(
                f"${WEIGHTS_ENV} names {path}, which is not a file; point it at {STANDARD_WEIGHTS.name} "
                f"(from {file_url(WEIGHTS_BASE_URL, STANDARD_WEIGHTS.name)}), or unset it"
            )
        return path, f"${WEIGHTS_ENV}"
    found = next((path for path in weights_places(cache_dir) if path.is_file()), None)
    return found, "ganforge's search" if found is not None else ""


def readiness_problem(cache_dir: Path) -> str | None:
    """What this machine lacks to compute the Inception metrics now (torch-fidelity, the weights file), in
    words; None when both are here. Nothing is downloaded, nor hashed: ``ganforge validate`` asks."""
    try:
        require_torch_fidelity("an Inception metric")
        path, _ = weights_on_disk(cache_dir)
    except UsageError as error:
        return str(error)
    if path is not None:
        return None
    return (
        f"the Inception-v3 weights are not here: ganforge downloads them once (about 96 MB) from "
        f"{file_url(WEIGHTS_BASE_URL, STANDARD_WEIGHTS.name)} into {weights_places(cache_dir)[0].parent}"
    )


def _download(places: list[Path], log: Callable[[str], None] | None) -> Path:
    folder = places[0].parent
    if log is not None:
        size = STANDARD_WEIGHTS.published_bytes / 1e6
        log(f"downloading the Inception-v3 weights (once, about {size:.0f} MB) into {folder}")
    try:
        return download(STANDARD_WEIGHTS, mirrors([WEIGHTS_BASE_URL]), folder)
    except DownloadError as error:
        looked = ", ".join(str(path) for path in places)
        raise InceptionWeightsError(
            f"the Inception-v3 weights are not here and could not be downloaded ({error})\n"
            f"ganforge looked for ${WEIGHTS_ENV} (not set), then {looked}. On a machine with internet, download "
            f"{file_url(WEIGHTS_BASE_URL, STANDARD_WEIGHTS.name)} (SHA-256 {STANDARD_WEIGHTS.sha256}) and put it "
            f"at {places[0]}, or point ${WEIGHTS_ENV} at it"
        ) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checked_weights(path: Path, expected: str, *, found_by: str) -> InceptionWeights:
    """``path`` if its SHA-256 is ``expected``; else an error naming both hashes and what to do."""
    try:
        got = file_sha256(path)
    except OSError as error:
        raise InceptionWeightsError(f"cannot read the Inception weights {path}: {error.strerror or error}") from None
    if got != expected:
        standard = expected == STANDARD_WEIGHTS.sha256
        wanted = (
            f"the standard {STANDARD_WEIGHTS.name} (from {file_url(WEIGHTS_BASE_URL, STANDARD_WEIGHTS.name)})"
            if standard
            else f"the file ${SHA256_ENV} names"
        )
        raise InceptionWeightsError(
            f"refusing the Inception weights {path} (found by {found_by}): its SHA-256 is {got}, expected "
            f"{expected}, {wanted}; replace or delete the file"
        )
    return InceptionWeights(path, got, standard=got == STANDARD_WEIGHTS.sha256)


def read_state_dict(weights: InceptionWeights) -> dict[str, torch.Tensor]:
    """The file's tensors, read by the weights-only unpickler (no code runs)."""
    try:
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that needs more than tensors, or not a torch file
        raise InceptionWeightsError(
            f"cannot read the Inception weights {weights.path} as tensors alone: {type(error).__name__}: "
            f"{first_line(str(error))}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise InceptionWeightsError(f"{weights.path} holds no mapping of names to tensors: not Inception weights")
    return state


class InceptionNetwork:
    """torch-fidelity's Inception-v3 on checked weights; turns image sets into pool features and logits."""

    def __init__(
        self, weights: InceptionWeights, device: torch.device, log: Callable[[str], None] | None = None
    ) -> None:
        fidelity = require_torch_fidelity("an Inception metric")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        serialised = io.BytesIO()
        torch.save(read_state_dict(weights), serialised)
        serialised.seek(0)
        try:
            module = FeatureExtractorInceptionV3(
                "inception-v3-compat", [POOL_FEATURES, LOGITS], feature_extractor_weights_path=serialised
            )
        except RuntimeError as error:  # load_state_dict: missing or unexpected names, wrong shapes
            raise InceptionWeightsError(
                f"{weights.path} does not fit torch-fidelity's Inception-v3: {first_line(str(error))}"
            ) from None
        self.module = module.to(device).eval()
        self.device = device
        self.log = log or (lambda message: None)
        self.weights = weights
        self.version = fidelity.__version__
        self.protocol: dict[str, Any] = {
            "feature_network": "inception_v3",
            "implementation": f"torch-fidelity {self.version}",
            "weights": str(weights.path),
            "weights_sha256": weights.sha256,
            "standard_weights": weights.standard,
            "input": "8-bit RGB (a single channel repeated three times), resized to 299x299 by torch-fidelity's "
            "TensorFlow-1-compatible bilinear interpolation",
            "features": "2048-d pool features (FID, KID, precision/recall); the 1008 unbiased logits (Inception Score)",
        }

    def fingerprint(self) -> dict[str, Any]:
        """What its features depend on: the weights file's hash, torch-fidelity's version, what runs it."""
        return {"weights": self.weights.sha256, "torch_fidelity": self.version, **numerics(self.device)}

    @torch.no_grad()
    def extract(self, images: ImageSet) -> FeatureSet:
        channels = images.images.shape[1]
        if channels not in (1, 3):
            raise UsageError(
                f"{images.description}: Inception-v3 sees RGB or grayscale images; these have {channels} channels"
            )
        # Minutes on a CPU for thousands of images: say what is being done.
        self.log(f"Inception-v3 features of {images.description} on {self.device.type}")
        features, logits = [], []
        for chunk in images.images.split(EXTRACT_BATCH):
            rgb = chunk.expand(-1, 3, -1, -1) if channels == 1 else chunk
            pool, chunk_logits = self.module(rgb.to(self.device))
            features.append(pool.cpu())
            logits.append(chunk_logits.cpu())
        return FeatureSet(torch.cat(features), logits=torch.cat(logits))


def inception_network(
    device: torch.device, cache_dir: Path, log: Callable[[str], None] | None = None
) -> InceptionNetwork:
    """The Inception network on the checked weights (found, or downloaded once into ``cache_dir``)."""
    require_torch_fidelity("an Inception metric")
    return InceptionNetwork(find_weights(cache_dir, log), device, log)
