"""Independent check that a DSSE envelope reprod signed carries a valid in-toto Statement v1 and a valid
SLSA predicate, with the in-toto-attestation package (its protobuf schemas and validators).

Usage: validate_statement.py ENVELOPE.json...
For each envelope: parses the payload strictly into the in-toto Statement proto (unknown fields are
errors) and runs the package's Statement.validate(); parses the predicate strictly into the SLSA
Verification Summary v1 or Provenance v1 proto; and checks the specifications' requirements the protos
cannot express (required fields, ResourceDescriptors with a uri, digest or content, lowercase hex
digests, a resourceUri that is a URI, FAILED summaries with verifiedLevels ["FAILED"]).
Prints one line per envelope and exits 1 if any is invalid.
"""

import base64
import json
import re
import sys

from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

VSA = "https://slsa.dev/verification_summary/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
HEX = {"sha256": 64, "sha512": 128, "sha384": 96, "sha1": 40, "gitCommit": 40}
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


def descriptor(rd, where, need_digest=False):
    ResourceDescriptor.copy_from_pb(rd).validate()
    # resource_descriptor.md: a descriptor MUST specify at least one of uri, digest or content.
    if not (rd.uri or rd.digest or rd.content):
        raise ValueError(f"{where}: a ResourceDescriptor needs a uri, digest or content")
    if need_digest and not rd.digest:
        raise ValueError(f"{where}: needs a digest")
    if rd.uri and not URI.match(rd.uri):
        raise ValueError(f"{where}: uri {rd.uri!r} is not a URI")
    for alg, value in rd.digest.items():
        if alg in HEX and not re.fullmatch("[0-9a-f]{%d}" % HEX[alg], value):
            raise ValueError(f"{where}: digest {alg} {value!r} is not {HEX[alg]} lowercase hex digits")


def check_vsa(predicate):
    # Two fields the package's proto (0.9.3) gets wrong against the SLSA specification, which its
    # maintainers call authoritative (in-toto/attestation#425): `verifiedLevels` is an array of strings
    # there, a string here; and `verifier.version` (VSA 1.1, a map of component versions) is missing. Both
    # are checked below by the specification, and the rest is parsed strictly.
    levels = predicate.get("verifiedLevels")
    if not isinstance(levels, list) or not all(isinstance(x, str) for x in levels):
        raise ValueError(f"verifiedLevels must be an array of strings, not {levels!r}")
    version = predicate.get("verifier", {}).get("version", {})
    if not isinstance(version, dict) or not all(isinstance(v, str) for v in version.values()):
        raise ValueError(f"verifier.version must map components to version strings, not {version!r}")
    strict = {k: v for k, v in predicate.items() if k != "verifiedLevels"}
    strict["verifier"] = {k: v for k, v in predicate.get("verifier", {}).items() if k != "version"}
    vsa = json_format.ParseDict(strict, vsa_pb2.VerificationSummary())
    if not vsa.verifier.id:
        raise ValueError("verifier.id is required")
    if not vsa.HasField("time_verified"):
        raise ValueError("timeVerified is required")
    if not URI.match(vsa.resource_uri):
        raise ValueError(f"resourceUri {vsa.resource_uri!r} is not a URI")
    if not vsa.policy.uri or not URI.match(vsa.policy.uri):
        raise ValueError("policy.uri is required and must be a URI")
    for i, a in enumerate(vsa.input_attestations):
        if not a.digest:
            raise ValueError(f"inputAttestations[{i}]: needs a digest")
        if a.uri and not URI.match(a.uri):
            raise ValueError(f"inputAttestations[{i}]: uri {a.uri!r} is not a URI")
    if vsa.verification_result not in ("PASSED", "FAILED"):
        raise ValueError(f"verificationResult {vsa.verification_result!r}")
    if not levels:
        raise ValueError("verifiedLevels is required")
    if vsa.verification_result == "FAILED" and levels != ["FAILED"]:
        raise ValueError(f"a FAILED summary has verifiedLevels {levels}, not ['FAILED']")
    if vsa.verification_result == "PASSED" and "FAILED" in levels:
        raise ValueError("a PASSED summary lists FAILED")
    for level in levels:
        if level.startswith("SLSA_") and not re.fullmatch(r"SLSA_BUILD_LEVEL_[0-3]", level):
            raise ValueError(f"custom level {level!r} must not start with SLSA_")
    return vsa.verification_result


def check_provenance(predicate):
    p = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    bd, rd = p.build_definition, p.run_details
    if not bd.build_type:
        raise ValueError("buildDefinition.buildType is required")
    if not bd.external_parameters:
        raise ValueError("buildDefinition.externalParameters is required")
    for i, d in enumerate(bd.resolved_dependencies):
        descriptor(d, f"resolvedDependencies[{i}]")
    if not rd.builder.id:
        raise ValueError("runDetails.builder.id is required")
    for i, b in enumerate(rd.byproducts):
        descriptor(b, f"byproducts[{i}]")
    return "provenance"


def check(path):
    with open(path, "rb") as f:
        envelope = json.load(f)
    if envelope.get("payloadType") != "application/vnd.in-toto+json":
        raise ValueError(f"payloadType {envelope.get('payloadType')!r}")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    pb = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    for i, s in enumerate(pb.subject):
        descriptor(s, f"subject[{i}]", need_digest=True)
    kind = statement["predicateType"]
    if kind == VSA:
        return check_vsa(statement["predicate"])
    if kind == PROVENANCE:
        return check_provenance(statement["predicate"])
    raise ValueError(f"unexpected predicateType {kind!r}")


failed = False
for path in sys.argv[1:]:
    try:
        print(f"valid\t{check(path)}\t{path}")
    except Exception as e:  # noqa: BLE001 - any failure is reported with the file
        failed = True
        print(f"INVALID\t{type(e).__name__}: {e}\t{path}")
sys.exit(1 if failed else 0)
