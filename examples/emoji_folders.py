"""Twitter's emoji as a folder of class folders for `ganforge run examples/emoji.yaml`.

    python examples/emoji_folders.py                          # the npm package's latest version
    python examples/emoji_folders.py --tarball emoji.tgz      # a copy you downloaded

It fetches the npm package emoji-datasource-twitter (images MIT/CC-BY 4.0, Twitter's Twemoji: see
the package's README), checks the tarball against the registry's sha512 (or, where the registry
gives none, its sha1), and writes each emoji's 64x64 RGBA PNG into a folder named after its
category: data/emoji/smileys_emotion/grinning.png. Categories with fewer than --min-images images
are left out (by default "Component": five skin-tone swatches and hair pieces, not emoji). Skin-tone
variants are left out unless --skin-tones is given: they would make People & Body six times larger
than any other class, with near-copies.

It writes only into a folder that is new, empty, or one it made before (it leaves a marker file
there and replaces only the class folders it made); it writes nothing over any other file.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO, Any

PACKAGE = "emoji-datasource-twitter"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
IMAGES = "package/img/twitter/64/"
EMOJI_JSON = "package/emoji.json"
SIDE = 64
MARKER = ".emoji_folders.json"
MAX_TARBALL_BYTES = 512 * 1024**2
MAX_MEMBER_BYTES = 16 * 1024**2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_S = 60


class Refused(Exception):
    """What stops the script, in one line for the person who ran it."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/emoji"), help="folder of class folders to write")
    parser.add_argument("--tarball", type=Path, help=f"a local {PACKAGE} .tgz instead of downloading one")
    parser.add_argument("--integrity", help="the tarball's npm integrity (sha512-...) to check a local one against")
    parser.add_argument("--package-version", default="latest", help=f"the {PACKAGE} version to download")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="npm registry address")
    parser.add_argument("--min-images", type=int, default=20, help="leave out categories with fewer images")
    parser.add_argument("--skin-tones", action="store_true", help="add each emoji's skin-tone variants")
    args = parser.parse_args()
    try:
        counts, skipped = emoji_folders(args)
    except (Refused, OSError) as error:
        sys.exit(f"emoji_folders: {error}")
    width = max(map(len, [*counts, *skipped]))
    for category, count in sorted(counts.items()):
        print(f"{category:<{width}} {count:>5}")
    for category, count in sorted(skipped.items()):
        print(f"{category:<{width}} {count:>5}  left out: fewer than --min-images {args.min_images}")
    print(f"{sum(counts.values()):,} images in {len(counts)} class folders under {args.out}")


def emoji_folders(args: argparse.Namespace) -> tuple[dict[str, int], dict[str, int]]:
    """Write the class folders; the images written per folder, and the categories left out with their sizes."""
    check_out_folder(args.out)
    with tempfile.TemporaryDirectory(prefix="emoji-folders-") as scratch:
        if args.tarball is not None:
            tarball = args.tarball
            if args.integrity is not None:
                check_integrity(tarball, {"integrity": args.integrity}, str(tarball))
            else:
                print(f"{tarball}: a local tarball, not checked (give --integrity to check it)")
        else:
            tarball = download(args.registry, args.package_version, Path(scratch) / "package.tgz")
        emoji, images = read_tarball(tarball)
    chosen = choose_images(emoji, images, args.skin_tones)
    sizes = Counter(category for category, _, _ in chosen)
    skipped = {category: count for category, count in sizes.items() if count < args.min_images}
    kept = [entry for entry in chosen if entry[0] not in skipped]
    if not kept:
        largest = max(sizes.values(), default=0)
        raise Refused(f"no category has --min-images {args.min_images} images (the largest: {largest})")
    write_folders(args.out, kept)
    return dict(Counter(category for category, _, _ in kept)), skipped


# -- the package: found in the registry, downloaded, checked, read ---------------------------------


def download(registry: str, version: str, path: Path) -> Path:
    metadata_url = f"{registry.rstrip('/')}/{PACKAGE}/{version}"
    metadata = json.loads(fetch(metadata_url, path.with_suffix(".json"), 16 * 1024**2).read_bytes())
    dist = metadata.get("dist") if isinstance(metadata, dict) else None
    if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
        raise Refused(f"{metadata_url} names no tarball (dist.tarball): is it an npm registry?")
    print(f"downloading {PACKAGE}@{metadata.get('version', version)} from {dist['tarball']}")
    fetch(dist["tarball"], path, MAX_TARBALL_BYTES)
    check_integrity(path, dist, dist["tarball"])
    return path


def fetch(url: str, path: Path, limit: int) -> Path:
    if not url.startswith(("https://", "http://")):
        raise Refused(f"{url}: only http(s) addresses are fetched")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, path.open("xb") as out:
            copy_at_most(response, out, limit, url)
    except urllib.error.URLError as error:
        raise Refused(f"cannot download {url}: {getattr(error, 'reason', error)}") from None
    except (OSError, ValueError) as error:
        raise Refused(f"cannot download {url}: {error}") from None
    return path


def copy_at_most(source: IO[bytes], out: IO[bytes], limit: int, name: str) -> None:
    copied = 0
    while chunk := source.read(1024 * 1024):
        copied += len(chunk)
        if copied > limit:
            raise Refused(f"{name} is larger than {limit // 1024**2} MB: not the package this script knows")
        out.write(chunk)


def check_integrity(path: Path, dist: dict[str, Any], name: str) -> None:
    """The npm registry's sha512 (Subresource Integrity form) where it gives one, else its sha1 ``shasum``."""
    integrity, shasum = dist.get("integrity"), dist.get("shasum")
    if isinstance(integrity, str) and integrity.startswith("sha512-"):
        expected, digest = integrity, "sha512-" + base64.b64encode(file_digest(path, "sha512")).decode()
    elif isinstance(shasum, str):
        expected, digest = shasum.lower(), file_digest(path, "sha1").hex()
    else:
        raise Refused(f"the registry gives no sha512 integrity or sha1 shasum for {name}: cannot check it")
    if digest != expected:
        raise Refused(f"{name} is not the package the registry describes: checksum {digest}, expected {expected}")
    print(f"checked {name}: {expected[:24]}...")


def file_digest(path: Path, algorithm: str) -> bytes:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, algorithm).digest()


def read_tarball(path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """emoji.json's entries and the 64 px PNGs by file name, in one pass over the archive."""
    emoji, images = None, {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                wanted = member.name == EMOJI_JSON or (member.name.startswith(IMAGES) and member.name.endswith(".png"))
                if not wanted or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise Refused(f"{path}: {member.name} is {member.size:,} bytes, not an emoji")
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                if member.name == EMOJI_JSON:
                    emoji = json.loads(stream.read())
                else:
                    images[member.name.removeprefix(IMAGES)] = stream.read()
    except (OSError, tarfile.TarError, EOFError) as error:
        raise Refused(f"cannot read {path} as a .tgz: {error}") from None
    except ValueError as error:
        raise Refused(f"{path}: {EMOJI_JSON} is not JSON: {error}") from None
    if not isinstance(emoji, list):
        raise Refused(f"{path} has no {EMOJI_JSON} list: not a {PACKAGE} tarball")
    return emoji, images


def choose_images(emoji: list[Any], images: dict[str, bytes], skin_tones: bool) -> list[tuple[str, str, bytes]]:
    """(category, file name, PNG) of each emoji with a 64x64 image, skin-tone variants as asked."""
    chosen, taken = [], set()
    for entry in emoji:
        # A category without a letter or digit would name no folder: such an entry is left out.
        if not isinstance(entry, dict) or not slug(str(entry.get("category", ""))):
            continue
        variants = [entry]
        if skin_tones and isinstance(entry.get("skin_variations"), dict):
            variants += [v for v in entry["skin_variations"].values() if isinstance(v, dict)]
        for variant in variants:
            data = images.get(str(variant.get("image")))
            if data is None or not square_png(data):
                continue
            category = slug(str(entry["category"]))
            name = name_slug(str(entry.get("short_name") or "")) or slug(Path(variant["image"]).stem) or "emoji"
            if variant is not entry or (category, name) in taken:
                name = f"{name}_{slug(Path(variant['image']).stem)}"
            taken.add((category, name))
            chosen.append((category, f"{name}.png", data))
    return chosen


def square_png(data: bytes) -> bool:
    """A PNG whose header says SIDE x SIDE pixels."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    return int.from_bytes(data[16:20], "big") == SIDE and int.from_bytes(data[20:24], "big") == SIDE


def name_slug(short_name: str) -> str:
    """A file name for an emoji's short name; "+1" and "-1" (thumbs up and down) kept apart."""
    return slug(re.sub(r"^-", "minus", re.sub(r"^\+", "plus", short_name)))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# -- the out folder: new, empty, or this script's own -------------------------------------------------


def check_out_folder(out: Path) -> None:
    if out.is_symlink():
        raise Refused(f"{out} is a link: give a real folder")
    if out.exists() and not out.is_dir():
        raise Refused(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise Refused(f"{out} is not empty and was not made by this script ({MARKER} is missing): give a new --out")


def write_folders(out: Path, chosen: list[tuple[str, str, bytes]]) -> None:
    """Replace the class folders this script made before, then write each image into a new one."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    made_before = own_folders(marker)
    folders = sorted({category for category, _, _ in chosen})
    for folder in folders:
        if (out / folder).exists() and folder not in made_before:
            raise Refused(f"{out / folder} exists and was not made by this script: move it away or give a new --out")
    # The marker names every folder before it is made: an interrupted run leaves nothing unclaimed.
    write_marker(marker, sorted(made_before | set(folders)))
    for folder in made_before:
        remove_own_folder(out / folder)
    for folder in folders:
        (out / folder).mkdir()
    for category, name, data in chosen:
        with (out / category / name).open("xb") as image:
            image.write(data)
    write_marker(marker, folders)


def own_folders(marker: Path) -> set[str]:
    if not marker.is_file():
        return set()
    try:
        folders = json.loads(marker.read_text())["folders"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Refused(f"{marker} is damaged ({error}): remove the folder {marker.parent} yourself") from None
    if not isinstance(folders, list) or not all(isinstance(f, str) and f == slug(f) and f for f in folders):
        raise Refused(f"{marker} is damaged (folders is not a list of class names): remove {marker.parent} yourself")
    return set(folders)


def remove_own_folder(folder: Path) -> None:
    if folder.is_symlink():
        raise Refused(f"{folder} is a link, not the folder this script made: remove it yourself")
    if folder.is_dir():
        shutil.rmtree(folder)


def write_marker(marker: Path, folders: list[str]) -> None:
    partial = marker.with_name(marker.name + ".partial")
    partial.unlink(missing_ok=True)
    partial.write_text(json.dumps({"made_by": "examples/emoji_folders.py", "folders": folders}, indent=1))
    partial.replace(marker)


if __name__ == "__main__":
    main()
