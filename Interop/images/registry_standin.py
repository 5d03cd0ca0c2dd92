#!/usr/bin/env python3
"""A small OCI registry stand-in for what a real registry won't do (Python 3 standard library only).

It serves one OCI image layout directory read-only as one repository of the distribution API v2:

    GET|HEAD /v2/                              200, or the 401 challenge in bearer mode
    GET|HEAD /v2/<repo>/manifests/<tag|digest> a tag is the org.opencontainers.image.ref.name annotation
    GET|HEAD /v2/<repo>/blobs/<digest>         blobs/sha256/<hex> of the layout
    GET      /v2/<repo>/referrers/<digest>     OCI 1.1 referrers: an index of the layout's manifests (those listed in
                                               index.json) whose `subject` is <digest>, with their artifactType
    GET      /token                            bearer mode: the token service
    GET      /storage/<digest>                 redirect mode: where blob GETs are sent
    GET      /stats                            JSON counts of what was asked, for the tests' assertions
    GET      /revoke                           forgets every token issued so far (a restarted token service)

Modes (--mode, comma-separated):
    bearer    every /v2/ request needs "Authorization: Bearer <token>"; without one the answer is 401 with
              WWW-Authenticate: Bearer realm="http://127.0.0.1:PORT/token",service="standin",
              scope="repository:<repo>:pull". /token checks Basic --user/--password when --user is given and
              answers {"token": ..., "expires_in": --expires-in}. --realm names another token service.
    lie       blob GETs answer bytes that do not match their digest (same length, last byte flipped).
    redirect  blob GETs answer 307 to /storage/<digest>, which serves the blob without authentication.
    redirect-host
              the same, to http://localhost:PORT/storage/<digest>: another host name, as blob storage is (a
              client must not send the registry's Authorization there; /stats counts those that do).
    slow      blob responses wait --delay seconds before they are sent.
    no-referrers
              the referrers API answers 403 DENIED, as some registries refuse a route they do not know.

The port is written to --port-file (written whole, then renamed) once the server listens on 127.0.0.1. The
process exits by itself after --lifetime seconds, or when its parent goes away, so a crashed test run leaves no
server behind.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class State:
    def __init__(self, args):
        self.args = args
        self.modes = set(m for m in args.mode.split(",") if m)
        self.lock = threading.Lock()
        self.tokens = set()
        self.stats = {
            "token_requests": 0,
            "manifest_gets": 0,
            "blob_gets": 0,
            "storage_gets": 0,
            "storage_authorization": 0,
            "unauthorized": 0,
            "referrers_gets": 0,
        }

    def count(self, key):
        with self.lock:
            self.stats[key] += 1

    def snapshot(self):
        with self.lock:
            return dict(self.stats)

    def blob_path(self, digest):
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return None
        path = os.path.join(self.args.layout, "blobs", "sha256", digest[7:])
        return path if os.path.isfile(path) else None

    def manifest(self, reference):
        """(bytes, media type, digest) of the manifest named by a tag or a digest, or None."""
        if reference.startswith("sha256:"):
            path = self.blob_path(reference)
            if path is None:
                return None
            data = open(path, "rb").read()
            media = json.loads(data).get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
            return data, media, reference
        with open(os.path.join(self.args.layout, "index.json"), "rb") as f:
            index = json.load(f)
        for descriptor in index.get("manifests", []):
            if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == reference:
                path = self.blob_path(descriptor["digest"])
                if path is None:
                    return None
                return open(path, "rb").read(), descriptor["mediaType"], descriptor["digest"]
        return None

    def referrers(self, digest):
        """The OCI 1.1 referrers index of `digest`: every manifest of index.json whose subject names it."""
        with open(os.path.join(self.args.layout, "index.json"), "rb") as f:
            index = json.load(f)
        found = []
        for descriptor in index.get("manifests", []):
            path = self.blob_path(descriptor["digest"])
            if path is None:
                continue
            manifest = json.loads(open(path, "rb").read())
            if (manifest.get("subject") or {}).get("digest") != digest:
                continue
            entry = {"mediaType": descriptor["mediaType"], "digest": descriptor["digest"],
                     "size": descriptor["size"]}
            artifact_type = manifest.get("artifactType") or manifest.get("config", {}).get("mediaType")
            if artifact_type:
                entry["artifactType"] = artifact_type
            found.append(entry)
        return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": found}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "registry-standin/1"

    def log_message(self, format, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("standin: " + (format % args) + "\n")

    # Plumbing.

    def send(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def send_json(self, status, value, headers=None, head=False):
        headers = dict(headers or {})
        headers["Content-Type"] = "application/json"
        self.send(status, json.dumps(value).encode(), headers, head)

    def send_error_document(self, status, code, message, headers=None, head=False):
        self.send_json(status, {"errors": [{"code": code, "message": message}]}, headers, head)

    def authorized(self, head):
        """True when the request may go on; otherwise the 401 has been sent."""
        state = self.server.state
        if "bearer" not in state.modes:
            return True
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in state.tokens:
            return True
        state.count("unauthorized")
        port = self.server.server_address[1]
        realm = state.args.realm or "http://127.0.0.1:%d/token" % port
        challenge = 'Bearer realm="%s",service="standin",scope="repository:%s:pull"' % (realm, state.args.repository)
        self.send_error_document(
            401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}, head
        )
        return False

    # Endpoints.

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def route(self, head):
        state = self.server.state
        path = self.path.split("?", 1)[0]
        if path == "/stats":
            return self.send_json(200, state.snapshot())
        if path == "/token":
            return self.token()
        if path == "/revoke":
            with state.lock:
                state.tokens.clear()
            return self.send_json(200, {})
        if path.startswith("/storage/"):
            return self.storage(path[len("/storage/"):], head)
        if path in ("/v2", "/v2/"):
            if self.authorized(head):
                self.send_json(200, {}, head=head)
            return
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs|referrers)/([^/]+)", path)
        if match is None:
            return self.send_error_document(404, "NOT_FOUND", "no such endpoint", head=head)
        if not self.authorized(head):
            return
        repository, kind, reference = match.groups()
        if repository != state.args.repository:
            return self.send_error_document(404, "NAME_UNKNOWN", "repository name not known to registry", head=head)
        if kind == "manifests":
            self.manifest(reference, head)
        elif kind == "referrers":
            state.count("referrers_gets")
            if "no-referrers" in state.modes:
                return self.send_error_document(403, "DENIED", "requested access to the resource is denied")
            self.send(200, json.dumps(state.referrers(reference)).encode(),
                      {"Content-Type": "application/vnd.oci.image.index.v1+json"}, head)
        else:
            self.blob(reference, head)

    def manifest(self, reference, head):
        state = self.server.state
        if not head:
            state.count("manifest_gets")
        found = state.manifest(reference)
        if found is None:
            return self.send_error_document(404, "MANIFEST_UNKNOWN", "manifest unknown", head=head)
        data, media, digest = found
        self.send(200, data, {"Content-Type": media, "Docker-Content-Digest": digest}, head)

    def blob(self, digest, head):
        state = self.server.state
        if not head:
            state.count("blob_gets")
        path = state.blob_path(digest)
        if path is None:
            return self.send_error_document(404, "BLOB_UNKNOWN", "blob unknown to registry", head=head)
        if "redirect" in state.modes:
            return self.send(307, b"", {"Location": "/storage/" + digest}, head)
        if "redirect-host" in state.modes:
            location = "http://localhost:%d/storage/%s" % (self.server.server_address[1], digest)
            return self.send(307, b"", {"Location": location}, head)
        self.serve_blob(path, digest, head)

    def storage(self, digest, head):
        state = self.server.state
        if not head:
            state.count("storage_gets")
            if self.headers.get("Authorization"):
                state.count("storage_authorization")
        path = state.blob_path(digest)
        if path is None:
            return self.send(404, b"no such object", head=head)
        self.serve_blob(path, digest, head)

    def serve_blob(self, path, digest, head):
        state = self.server.state
        data = open(path, "rb").read()
        if "lie" in state.modes and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if "slow" in state.modes and not head:
            time.sleep(state.args.delay)
        self.send(
            200,
            data,
            {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest},
            head,
        )

    def token(self):
        state = self.server.state
        state.count("token_requests")
        if state.args.user:
            expected = "Basic " + base64.b64encode(
                ("%s:%s" % (state.args.user, state.args.password)).encode()
            ).decode()
            if self.headers.get("Authorization", "") != expected:
                return self.send_error_document(401, "UNAUTHORIZED", "bad credentials")
        token = secrets.token_hex(16)
        with state.lock:
            state.tokens.add(token)
        self.send_json(200, {"token": token, "expires_in": state.args.expires_in})


def watch_parent(parent, lifetime, server):
    """Stops the server when the process that started it is gone, or after `lifetime` seconds."""
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", required=True, help="the OCI image layout directory to serve")
    parser.add_argument("--repository", required=True, help="the repository name it is served as")
    parser.add_argument("--port-file", required=True, help="where the listening port is written")
    parser.add_argument("--mode", default="", help="comma-separated: bearer, lie, redirect, redirect-host, slow")
    parser.add_argument("--user", default="", help="bearer mode: the user name /token requires")
    parser.add_argument("--password", default="", help="bearer mode: the password /token requires")
    parser.add_argument("--realm", default="", help="bearer mode: the challenge's realm (default: its own /token)")
    parser.add_argument("--expires-in", type=int, default=300, help="bearer mode: the tokens' expires_in")
    parser.add_argument("--delay", type=float, default=1.0, help="slow mode: seconds before a blob is sent")
    parser.add_argument("--lifetime", type=float, default=600, help="seconds before the server exits by itself")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args)
    temporary = args.port_file + ".tmp"
    with open(temporary, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(temporary, args.port_file)
    threading.Thread(target=watch_parent, args=(os.getppid(), args.lifetime, server), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
