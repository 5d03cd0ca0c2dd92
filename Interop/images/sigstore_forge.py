#!/usr/bin/env python3
"""Test-made Sigstore material for the signature tests: a trust root, and cosign-style signatures of images.

Nothing here talks to the public Sigstore services. `root DIR` makes a Fulcio-style CA (a root and an
intermediate, with the leaf carrying Sigstore's OID extensions), a Rekor log key, and DIR/trusted_root.json in
Sigstore's trust-root format. `sign-image` signs an image digest as cosign does and stores the signature where
cosign would: the legacy tag `sha256-<hex>.sig` (simple-signing layer with annotations) or an OCI 1.1 referrer
(a manifest with artifactType application/vnd.dev.sigstore.bundle.v0.3+json and a `subject`, listed in the
`sha256-<hex>` tag-schema index), pushed to a registry over plain HTTP or written into an OCI layout directory.
`sign-blob` writes a bundle for a file (the conformance CLI's `verify-bundle` input).

Faults (--fault) make one thing wrong and leave the rest valid: wrong-digest, untrusted-chain, bad-set,
bad-proof, no-set (an inclusion proof alone), expired-leaf, critical-extension, chain-loop, chain-100,
garbage-base64, unknown-media-type, lying-size. Needs Python's `cryptography` (Debian: python3-cryptography).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def b64(data):
    return base64.b64encode(data).decode()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return hashlib.sha256(data).digest()


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def spki(key):
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def sign(key, data):
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def save_key(key, path):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def ca_cert(name, key, issuer_name, issuer_key, path_length, start, end):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bpfman-test"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def make_ca(directory, prefix=""):
    """A root and an intermediate, valid from a day ago for ten years."""
    start, end = NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=3650)
    root_key, inter_key = new_key(), new_key()
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bpfman-test"),
                           x509.NameAttribute(NameOID.COMMON_NAME, prefix + "root")])
    root = ca_cert(prefix + "root", root_key, root_name, root_key, 1, start, end)
    inter = ca_cert(prefix + "intermediate", inter_key, root.subject, root_key, 0, start, end)
    for name, obj in [("root", root), ("intermediate", inter)]:
        with open(os.path.join(directory, prefix + name + ".pem"), "wb") as f:
            f.write(pem(obj))
    save_key(root_key, os.path.join(directory, prefix + "root.key"))
    save_key(inter_key, os.path.join(directory, prefix + "intermediate.key"))
    return root, inter, inter_key


def command_root(args):
    os.makedirs(args.dir, exist_ok=True)
    root, inter, _ = make_ca(args.dir)
    rekor = new_key()
    save_key(rekor, os.path.join(args.dir, "rekor.key"))
    trusted = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "https://rekor.bpfman.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(rekor)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": "2020-01-01T00:00:00Z"}},
            "logId": {"keyId": b64(sha256(spki(rekor)))},
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "bpfman-test", "commonName": "root"},
            "uri": "https://fulcio.bpfman.test",
            "certChain": {"certificates": [{"rawBytes": b64(der(inter))}, {"rawBytes": b64(der(root))}]},
            "validFor": {"start": "2020-01-01T00:00:00.000Z"},
        }],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
    with open(os.path.join(args.dir, "trusted_root.json"), "w") as f:
        json.dump(trusted, f, indent=2)


def utf8_string_der(text):
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def make_leaf(issuer_cert, issuer_key, identity, oidc_issuer, fault, integrated):
    key = new_key()
    start, end = integrated - datetime.timedelta(minutes=5), integrated + datetime.timedelta(minutes=5)
    if fault == "expired-leaf":
        start, end = integrated - datetime.timedelta(hours=2), integrated - datetime.timedelta(hours=1)
    name = x509.UniformResourceIdentifier(identity) if "://" in identity else x509.RFC822Name(identity)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectAlternativeName([name]), critical=True)
        .add_extension(x509.UnrecognizedExtension(ISSUER_V1, oidc_issuer.encode()), critical=False)
        .add_extension(x509.UnrecognizedExtension(ISSUER_V2, utf8_string_der(oidc_issuer)), critical=False)
    )
    if fault == "critical-extension":
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def merkle_root(leaves):
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:]))


def merkle_path(index, leaves):
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return merkle_path(index, leaves[:k]) + [merkle_root(leaves[k:])]
    return merkle_path(index - k, leaves[k:]) + [merkle_root(leaves[:k])]


class Signer:
    """Everything one signature needs: the CA, the Rekor key, the leaf and the log entry."""

    def __init__(self, args):
        directory = args.root
        self.fault = args.fault
        self.rekor = load_key(os.path.join(directory, "rekor.key"))
        self.integrated = NOW - datetime.timedelta(seconds=60)
        if self.fault == "untrusted-chain":
            other = os.path.join(directory, "other")
            os.makedirs(other, exist_ok=True)
            root, inter, inter_key = make_ca(other, "other-")
        else:
            root = load_cert(os.path.join(directory, "root.pem"))
            inter = load_cert(os.path.join(directory, "intermediate.pem"))
            inter_key = load_key(os.path.join(directory, "intermediate.key"))
        self.chain = [inter, root]
        if self.fault == "chain-loop":
            # Two CAs that issued each other; the leaf is issued by the first. Neither is in the trust root.
            key_a, key_b = new_key(), new_key()
            name_a = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loop-a")])
            name_b = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loop-b")])
            start, end = NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=1)
            cert_a = ca_cert("loop-a", key_a, name_b, key_b, None, start, end)
            cert_b = ca_cert("loop-b", key_b, name_a, key_a, None, start, end)
            inter, inter_key, self.chain = cert_a, key_a, [cert_a, cert_b]
        if self.fault == "chain-100":
            self.chain = [inter] * 100
        self.leaf, self.key = make_leaf(inter, inter_key, args.identity, args.issuer, self.fault, self.integrated)
        self.log_index = 3

    def log_entry(self, body):
        """The bundle's tlog entry for `body`: SET and/or inclusion proof with a signed checkpoint."""
        log_id = sha256(spki(self.rekor))
        time = int(self.integrated.timestamp())
        set_payload = canonical({"body": b64(body), "integratedTime": time, "logID": log_id.hex(),
                                 "logIndex": self.log_index})
        signed_entry_timestamp = sign(self.rekor, set_payload)
        if self.fault == "bad-set":
            signed_entry_timestamp = signed_entry_timestamp[:-1] + bytes([signed_entry_timestamp[-1] ^ 1])
        leaves = [b"entry-%d" % i for i in range(6)]
        leaves[self.log_index] = body
        root_hash = merkle_root(leaves)
        hashes_ = merkle_path(self.log_index, leaves)
        if self.fault == "bad-proof":
            hashes_[0] = bytes(32)
        origin = "rekor.bpfman.test - 1"
        note = "%s\n%d\n%s\n" % (origin, len(leaves), b64(root_hash))
        note_signature = b64(log_id[:4] + sign(self.rekor, note.encode()))
        checkpoint = note + "\n\u2014 %s %s\n" % (origin, note_signature)
        entry = {
            "logIndex": str(self.log_index),
            "logId": {"keyId": b64(log_id)},
            "integratedTime": str(time),
            "inclusionProof": {
                "logIndex": str(self.log_index), "rootHash": b64(root_hash), "treeSize": str(len(leaves)),
                "hashes": [b64(h) for h in hashes_], "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(body),
        }
        if self.fault != "no-set":
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(signed_entry_timestamp)}
        return entry, signed_entry_timestamp

    def hashedrekord(self, digest, signature):
        return canonical({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                     "signature": {"content": b64(signature), "publicKey": {"content": b64(pem(self.leaf))}}},
        })

    def legacy(self, reference, digest):
        """The simple-signing payload and the layer annotations of a legacy `.sig` signature."""
        named = "sha256:" + "0" * 64 if self.fault == "wrong-digest" else digest
        payload = canonical({"critical": {"identity": {"docker-reference": reference},
                                          "image": {"docker-manifest-digest": named},
                                          "type": "cosign container image signature"}, "optional": None})
        signature = sign(self.key, payload)
        body = self.hashedrekord(sha256(payload), signature)
        entry, signed_entry_timestamp = self.log_entry(body)
        bundle = {"SignedEntryTimestamp": b64(signed_entry_timestamp),
                  "Payload": {"body": b64(body), "integratedTime": int(entry["integratedTime"]),
                              "logIndex": self.log_index, "logID": sha256(spki(self.rekor)).hex()}}
        annotations = {
            "dev.cosignproject.cosign/signature": "!!not*base64!!" if self.fault == "garbage-base64"
            else b64(signature),
            "dev.sigstore.cosign/certificate": pem(self.leaf).decode(),
            "dev.sigstore.cosign/chain": "".join(pem(c).decode() for c in self.chain),
            "dev.sigstore.cosign/bundle": json.dumps(bundle, separators=(",", ":")),
        }
        return payload, annotations

    def image_bundle(self, reference, digest):
        """A v0.3 bundle as cosign v3 makes for an image: a DSSE envelope over an in-toto statement."""
        named = "0" * 64 if self.fault == "wrong-digest" else digest[len("sha256:"):]
        statement = canonical({"_type": "https://in-toto.io/Statement/v1",
                               "subject": [{"name": reference, "digest": {"sha256": named}}],
                               "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}})
        payload_type = "application/vnd.in-toto+json"
        pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(statement), statement)
        signature = sign(self.key, pae)
        envelope = {"payload": b64(statement), "payloadType": payload_type,
                    "signatures": [{"sig": b64(signature), "keyid": ""}]}
        body = canonical({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"envelopeHash": {"algorithm": "sha256", "value": sha256(canonical(envelope)).hex()},
                     "payloadHash": {"algorithm": "sha256", "value": sha256(statement).hex()},
                     "signatures": [{"signature": b64(signature), "verifier": b64(pem(self.leaf))}]},
        })
        entry, _ = self.log_entry(body)
        entry["kindVersion"] = {"kind": "dsse", "version": "0.0.1"}
        return self.bundle(entry, {"dsseEnvelope": envelope})

    def bundle(self, entry, content):
        material = {"certificate": {"rawBytes": b64(der(self.leaf))}, "tlogEntries": [entry]}
        if self.fault in ("chain-100", "chain-loop", "untrusted-chain"):
            # A v0.1-style chain carries the extra certificates.
            material = {"x509CertificateChain": {"certificates": [{"rawBytes": b64(der(c))}
                                                                  for c in [self.leaf] + self.chain]},
                        "tlogEntries": [entry]}
        media_type = "application/vnd.dev.sigstore.bundle.v9+json" if self.fault == "unknown-media-type" \
            else BUNDLE_TYPE
        if self.fault in ("chain-100", "chain-loop", "untrusted-chain") and media_type == BUNDLE_TYPE:
            media_type = "application/vnd.dev.sigstore.bundle+json;version=0.2"
        bundle = {"mediaType": media_type, "verificationMaterial": material}
        bundle.update(content)
        return json.dumps(bundle, indent=1).encode()

    def blob_bundle(self, data):
        digest = sha256(data)
        signature = sign(self.key, data)
        entry, _ = self.log_entry(self.hashedrekord(digest, signature))
        entry["kindVersion"] = {"kind": "hashedrekord", "version": "0.0.1"}
        return self.bundle(entry, {"messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)}, "signature": b64(signature)}})


class Registry:
    """Pushes blobs and manifests over the distribution API (plain HTTP, no auth)."""

    def __init__(self, host, repository):
        self.base = "http://%s/v2/%s" % (host, repository)

    def blob(self, data):
        digest = "sha256:" + sha256(data).hex()
        request = urllib.request.Request(self.base + "/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(request) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = self.base.split("/v2/")[0] + location
        location += ("&" if "?" in location else "?") + "digest=" + digest
        request = urllib.request.Request(location, method="PUT", data=data,
                                         headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request).close()
        return digest

    def manifest(self, data, media_type, reference):
        request = urllib.request.Request(self.base + "/manifests/" + reference, method="PUT", data=data,
                                         headers={"Content-Type": media_type})
        urllib.request.urlopen(request).close()
        return "sha256:" + sha256(data).hex()


class Layout:
    """Writes blobs into an OCI layout and lists manifests in its index.json."""

    def __init__(self, directory):
        self.directory = directory

    def blob(self, data):
        digest = sha256(data).hex()
        path = os.path.join(self.directory, "blobs", "sha256", digest)
        with open(path, "wb") as f:
            f.write(data)
        return "sha256:" + digest

    def manifest(self, data, media_type, reference):
        digest = self.blob(data)
        path = os.path.join(self.directory, "index.json")
        with open(path) as f:
            index = json.load(f)
        descriptor = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if not reference.startswith("sha256:"):
            descriptor["annotations"] = {"org.opencontainers.image.ref.name": reference}
        index["manifests"].append(descriptor)
        with open(path, "w") as f:
            json.dump(index, f)
        return digest


def descriptor(store, data, media_type, annotations=None, lie=False):
    digest = store.blob(data)
    result = {"mediaType": media_type, "digest": digest, "size": len(data) + (1 if lie else 0)}
    if annotations:
        result["annotations"] = annotations
    return result


def command_sign_image(args):
    signer = Signer(args)
    store = Registry(args.registry, args.repository) if args.registry else Layout(args.layout)
    reference = args.reference or "bpfman.test/bytecode"
    hex_digest = args.digest[len("sha256:"):]
    config = descriptor(store, b"{}", "application/vnd.oci.image.config.v1+json")
    if args.format == "legacy":
        payload, annotations = signer.legacy(reference, args.digest)
        layer = descriptor(store, payload, SIMPLE_SIGNING, annotations, lie=args.fault == "lying-size")
        manifest = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]})
        store.manifest(manifest, OCI_MANIFEST, "sha256-%s.sig" % hex_digest)
        return
    bundle = signer.image_bundle(reference, args.digest)
    empty = descriptor(store, b"{}", EMPTY_CONFIG)
    layer = descriptor(store, bundle, BUNDLE_TYPE, lie=args.fault == "lying-size")
    subject = {"mediaType": args.subject_media_type, "digest": args.digest, "size": args.subject_size}
    manifest = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE,
                          "config": empty, "layers": [layer], "subject": subject,
                          "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"}})
    digest = store.manifest(manifest, OCI_MANIFEST, "sha256:" + sha256(manifest).hex())
    if args.tag_schema:
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest), "artifactType": BUNDLE_TYPE}]})
        store.manifest(index, OCI_INDEX, "sha256-%s" % hex_digest)


def command_sign_blob(args):
    signer = Signer(args)
    with open(args.file, "rb") as f:
        data = f.read()
    with open(args.bundle, "wb") as f:
        f.write(signer.blob_bundle(data))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    root = commands.add_parser("root")
    root.add_argument("dir")
    for name in ("sign-image", "sign-blob"):
        sub = commands.add_parser(name)
        sub.add_argument("--root", required=True, help="the directory `root` made")
        sub.add_argument("--identity", default="signer@bpfman.test")
        sub.add_argument("--issuer", default="https://issuer.bpfman.test")
        sub.add_argument("--fault", default="")
        if name == "sign-image":
            sub.add_argument("--digest", required=True)
            sub.add_argument("--format", choices=["legacy", "bundle"], default="legacy")
            sub.add_argument("--registry", help="HOST:PORT of a plain-HTTP registry")
            sub.add_argument("--repository", default="bytecode")
            sub.add_argument("--layout", help="an OCI layout directory, instead of a registry")
            sub.add_argument("--reference", default="")
            sub.add_argument("--subject-media-type", default=OCI_MANIFEST)
            sub.add_argument("--subject-size", type=int, default=0)
            sub.add_argument("--no-tag-schema", dest="tag_schema", action="store_false")
        else:
            sub.add_argument("--bundle", required=True)
            sub.add_argument("file")
    args = parser.parse_args()
    {"root": command_root, "sign-image": command_sign_image, "sign-blob": command_sign_blob}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
