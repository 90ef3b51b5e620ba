"""A local HTTP server standing in for a dataset's or a weight file's official mirror."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ganforge.downloads import RemoteFile


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclasses.dataclass
class Mirror:
    """A folder served over HTTP on 127.0.0.1, counting the requests it answers."""

    url: str
    folder: Path
    requests: list[str]

    def put(self, name: str, data: bytes) -> RemoteFile:
        """Serve ``data`` as ``name``; the RemoteFile that describes it as published."""
        (self.folder / name).write_bytes(data)
        return RemoteFile(name, md5(data), len(data))


Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def serving(folder: Path, special: dict[str, Behaviour] | None = None) -> Iterator[Mirror]:
    """Serve ``folder``; a request for a name in ``special`` is answered by that function instead."""
    folder.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    special = special or {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            behaviour = special.get(self.path.lstrip("/"))
            if behaviour is not None:
                behaviour(self)
            else:
                super().do_GET()

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/", folder, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
