"""Independent check of a DSSE envelope reprod signed, with securesystemslib and the exported public key.

Usage: verify_envelope.py ENVELOPE.json PUBLIC.pem KEYID
Prints "verified" and exits 0 when securesystemslib's Envelope.verify accepts the envelope with that key;
prints the refusal and exits 1 otherwise. Nothing is adapted: the envelope is read as reprod served it,
and the key id is the one reprod publishes at /v1/keys.
"""

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

envelope_path, pem_path, keyid = sys.argv[1:4]
with open(pem_path, "rb") as f:
    key = SSlibKey.from_crypto(load_pem_public_key(f.read()), keyid=keyid, scheme="ecdsa-sha2-nistp256")
with open(envelope_path, "rb") as f:
    envelope = Envelope.from_dict(json.load(f))
try:
    envelope.verify([key], 1)
except Exception as e:  # noqa: BLE001 - any refusal is a "no"
    print(f"refused: {type(e).__name__}: {e}")
    sys.exit(1)
print("verified")
