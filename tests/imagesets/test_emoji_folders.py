"""examples/emoji_folders.py against a tiny fake of the npm package, served by a registry on 127.0.0.1."""

import base64
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from PIL import Image

SCRIPT = Path(__file__).parent.parent.parent / "examples" / "emoji_folders.py"
PACKAGE = "emoji-datasource-twitter"

EMOJI = [
    {"short_name": "grinning", "image": "1f600.png", "category": "Smileys & Emotion"},
    {"short_name": "+1", "image": "1f44d.png", "category": "People & Body"},
    {
        "short_name": "-1",
        "image": "1f44e.png",
        "category": "People & Body",
        "skin_variations": {"1F3FB": {"image": "1f44e-1f3fb.png"}},
    },
    {"short_name": "flag-fr", "image": "1f1eb-1f1f7.png", "category": "Flags"},
    {"short_name": "flag-de", "image": "1f1e9-1f1ea.png", "category": "Flags"},
    {"short_name": "too_small", "image": "small.png", "category": "Flags"},
    {"short_name": "missing", "image": "nowhere.png", "category": "Flags"},
    {"short_name": "skin-tone-2", "image": "1f3fb.png", "category": "Component"},
]


def png(side, colour):
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def fake_tarball():
    files = {"package/emoji.json": json.dumps(EMOJI).encode(), "package/README.md": b"fake"}
    for index, name in enumerate(["1f600", "1f44d", "1f44e", "1f44e-1f3fb", "1f1eb-1f1f7", "1f1e9-1f1ea", "1f3fb"]):
        files[f"package/img/twitter/64/{name}.png"] = png(64, (index * 30, 100, 200, 255))
        files[f"package/img/twitter/32/{name}.png"] = png(32, (0, 0, 0, 255))
    files["package/img/twitter/64/small.png"] = png(32, (1, 2, 3, 255))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def registry():
    """A registry on 127.0.0.1 serving the package's metadata and its tarball; ``files`` may be changed."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    address = f"http://127.0.0.1:{server.server_address[1]}"
    tarball = fake_tarball()
    files["/pkg.tgz"] = tarball
    metadata = {"version": "1.0.0", "dist": {"tarball": f"{address}/pkg.tgz", "integrity": integrity(tarball)}}
    files[f"/{PACKAGE}/latest"] = json.dumps(metadata).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield address, files, metadata
    server.shutdown()
    server.server_close()


def emoji_folders(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def tree(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_writes_each_category_as_a_class_folder_of_the_64px_images(registry, tmp_path):
    address, _, _ = registry
    out = tmp_path / "emoji"
    result = emoji_folders("--registry", address, "--out", out, "--min-images", 2)
    assert result.returncode == 0, result.stderr
    assert tree(out) == [
        ".emoji_folders.json",
        "flags/flag_de.png",
        "flags/flag_fr.png",
        "people_body/minus1.png",
        "people_body/plus1.png",
    ]
    assert (out / "flags" / "flag_fr.png").read_bytes() == png(64, (120, 100, 200, 255))
    assert f"checked {address}/pkg.tgz: sha512-" in result.stdout
    assert re.search(r"^smileys_emotion +1  left out: fewer than --min-images 2$", result.stdout, re.MULTILINE)
    assert re.search(r"^flags +2$", result.stdout, re.MULTILINE)
    assert "4 images in 2 class folders" in result.stdout


def test_refuses_a_tarball_that_is_not_the_one_the_registry_describes(registry, tmp_path):
    address, files, metadata = registry
    files["/pkg.tgz"] = files["/pkg.tgz"][:-1] + bytes([files["/pkg.tgz"][-1] ^ 1])
    out = tmp_path / "emoji"
    result = emoji_folders("--registry", address, "--out", out)
    assert result.returncode != 0
    checksum, expected = integrity(files["/pkg.tgz"]), metadata["dist"]["integrity"]
    assert result.stderr == (
        f"emoji_folders: {address}/pkg.tgz is not the package the registry describes: "
        f"checksum {checksum}, expected {expected}\n"
    )
    assert not out.exists()


def test_writes_only_into_a_new_or_empty_folder_or_its_own(registry, tmp_path):
    address, _, _ = registry
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    refused = emoji_folders("--registry", address, "--out", theirs)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "is not empty and was not made by this script" in refused.stderr
    assert tree(theirs) == ["notes.txt"]

    out = tmp_path / "emoji"
    assert emoji_folders("--registry", address, "--out", out, "--min-images", 2).returncode == 0
    (out / "notes.txt").write_text("mine")
    again = emoji_folders("--registry", address, "--out", out, "--min-images", 1, "--skin-tones")
    assert again.returncode == 0, again.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert "people_body/minus1_1f44e_1f3fb.png" in tree(out) and "smileys_emotion/grinning.png" in tree(out)


def test_a_local_tarball_is_checked_against_the_integrity_given(tmp_path):
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(fake_tarball())
    out = tmp_path / "emoji"
    wrong = emoji_folders("--tarball", tarball, "--integrity", integrity(b"other"), "--out", out)
    assert wrong.returncode != 0 and "is not the package the registry describes" in wrong.stderr
    assert not out.exists()
    checked = ("--integrity", integrity(tarball.read_bytes()))
    right = emoji_folders("--tarball", tarball, *checked, "--out", out, "--min-images", 1)
    assert right.returncode == 0, right.stderr
    assert "flags/flag_de.png" in tree(out)


def test_refuses_to_leave_out_every_category(tmp_path):
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(fake_tarball())
    result = emoji_folders("--tarball", tarball, "--out", tmp_path / "emoji", "--min-images", 50)
    assert result.returncode != 0
    assert result.stderr.endswith("emoji_folders: no category has --min-images 50 images (the largest: 2)\n")
