"""Prints the Kubernetes manifests of packaging/kubernetes as JSON, parsed by PyYAML (a real YAML parser,
as kubectl's is), for KubernetesManifestTests and the container end-to-end test.

Usage: python manifests.py [DIRECTORY]
Output: {"<file name>": [<document>, ...], ...} for every *.yaml file, documents in order.
"""
import glob
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "packaging", "kubernetes")
    files = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            # safe_load_all: plain data only, as the API server accepts it.
            files[os.path.basename(path)] = [document for document in yaml.safe_load_all(f) if document is not None]
    json.dump(files, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
