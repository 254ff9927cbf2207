"""A tiny stand-in for the Hugging Face Hub's file-resolve route, on 127.0.0.1.

It serves `/{owner}/{repo}/resolve/{revision}/{filename}` (HEAD and GET) with the headers huggingface_hub
reads: X-Repo-Commit, ETag / X-Linked-Etag (the sha256 for LFS files) and sizes. The real client library
talks to it over HTTP through HF_ENDPOINT; nothing of huggingface_hub is mocked."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.files: dict[tuple[str, str, str], tuple[bytes, str, str]] = {}  # (repo, rev, file) -> (data, commit, etag)
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                self.respond(body=False)

            def do_GET(self):
                self.respond(body=True)

            def respond(self, body: bool):
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self.send_error(404)
                key = ("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
                if key not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                data, commit, etag = hub.files[key]
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, revision: str, filename: str, data: bytes, etag: str | None = None) -> str:
        """Publish a file; returns the commit hash it is served under. etag defaults to the true sha256."""
        commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        self.files[(repo, revision, filename)] = (data, commit, etag or hashlib.sha256(data).hexdigest())
        self.files[(repo, commit, filename)] = self.files[(repo, revision, filename)]
        return commit

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
