"""Independent DSSE verification with securesystemslib, for reprod's cross-check test.

Reads a JSON list of cases {"envelope": {payload, payloadType, signatures: [one]}, "key": PEM} on stdin
and prints a JSON list of booleans: whether securesystemslib's Envelope.verify accepts the signature.

Two adaptations, both about encoding, not cryptography: securesystemslib matches signatures to keys by
keyid, so both get the same placeholder id; and its ECDSA verifier takes DER signatures, so a raw r||s
signature (as GCP KMS writes them) is re-encoded as DER first.
"""

import base64
import binascii
import json
import sys

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def b64(text):
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_")


def verify(case):
    public = load_pem_public_key(case["key"].encode())
    scheme = "rsa-pkcs1v15-sha256" if isinstance(public, rsa.RSAPublicKey) else None
    key = SSlibKey.from_crypto(public, keyid="k", scheme=scheme)
    envelope = dict(case["envelope"])
    signature = dict(envelope["signatures"][0])
    raw = b64(signature["sig"])
    if isinstance(public, ec.EllipticCurvePublicKey):
        width = (public.curve.key_size + 7) // 8
        if len(raw) == 2 * width:
            raw = encode_dss_signature(
                int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big")
            )
    signature["sig"] = base64.b64encode(raw).decode()
    signature["keyid"] = "k"
    envelope["signatures"] = [signature]
    try:
        Envelope.from_dict(envelope).verify([key], 1)
        return True
    except Exception:  # noqa: BLE001 - any refusal is a "no"
        return False


print(json.dumps([verify(c) for c in json.load(sys.stdin)]))
