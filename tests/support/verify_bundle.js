// Verifies a Sigstore bundle with sigstore-js (@sigstore/verify), the JavaScript implementation, against
// one public key found by the bundle's key hint; no transparency log, no timestamp authority.
// Usage: node verify_bundle.js BUNDLE.json PUBLIC.pem KEYID
// Prints {"verified": true, "payloadType": ...} and exits 0, or prints the error and exits 1.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { toSignedEntity, toTrustMaterial, Verifier } = require('@sigstore/verify');

const [bundlePath, pemPath, keyid] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const der = crypto
    .createPublicKey(fs.readFileSync(pemPath, 'utf8'))
    .export({ type: 'spki', format: 'der' });
  const emptyRoot = { tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
  const trust = toTrustMaterial(emptyRoot, { [keyid]: { rawBytes: der } });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log(JSON.stringify({ verified: true, payloadType: bundle.content.dsseEnvelope.payloadType }));
} catch (e) {
  console.log(`not verified: ${e.code || ''} ${e.message}`);
  process.exit(1);
}
