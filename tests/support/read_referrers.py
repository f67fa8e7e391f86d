"""Reads the verdicts reprod published about an image back with oras-py, an OCI client that is not reprod's.

Usage: read_referrers.py REGISTRY REPOSITORY DIGEST OUTDIR
Follows what a consumer on a registry without the referrers API follows: the referrers tag
(sha256-<hex>), each referrer manifest listed there (whose subject must be DIGEST) and its envelope layer,
then cosign's attestation image (sha256-<hex>.att) and its layers. Each envelope is written to OUTDIR as
referrer-N.json or att-N.json, as the registry served it; a JSON summary goes to stdout.
"""

import hashlib
import json
import os
import sys

import oras.provider

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

registry, repository, digest, outdir = sys.argv[1:5]
client = oras.provider.Registry(hostname=registry, insecure=True)
tag = digest.replace(":", "-", 1)


def manifest(reference, media_type):
    container = client.get_container(f"{registry}/{repository}{reference}")
    response = client.do_request(
        f"{client.prefix}://{container.manifest_url()}", "GET", headers={"Accept": media_type}
    )
    response.raise_for_status()
    return container, response.json()


def blob(container, layer):
    data = client.get_blob(container, layer["digest"]).content
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"], "blob digest mismatch"
    return data


summary = {"referrers": [], "att": []}
container, index = manifest(f":{tag}", INDEX)
for n, entry in enumerate(index["manifests"]):
    _, m = manifest(f"@{entry['digest']}", MANIFEST)
    layer = m["layers"][0]
    path = os.path.join(outdir, f"referrer-{n}.json")
    with open(path, "wb") as f:
        f.write(blob(container, layer))
    summary["referrers"].append(
        {
            "digest": entry["digest"],
            "artifactType": m.get("artifactType"),
            "subject": m.get("subject", {}).get("digest"),
            "predicateType": m.get("annotations", {}).get("in-toto.io/predicate-type"),
            "layerMediaType": layer["mediaType"],
            "path": path,
        }
    )
_, att = manifest(f":{tag}.att", MANIFEST)
for n, layer in enumerate(att["layers"]):
    path = os.path.join(outdir, f"att-{n}.json")
    with open(path, "wb") as f:
        f.write(blob(container, layer))
    summary["att"].append({"predicateType": layer.get("annotations", {}).get("predicateType"), "path": path})
print(json.dumps(summary))
