// Local S3-compatible object store for run mode and tests: s3rver with the credentials the
// AppHost generated (s3rver itself only knows a fixed S3RVER/S3RVER key pair, which we revoke).
// Usage: node s3-server.js <data-dir> <address> <port>; env S3_ACCESS_KEY, S3_SECRET_KEY.
'use strict';
const fs = require('fs');
const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account');

const [, , directory, address, port] = process.argv;
const accessKey = process.env.S3_ACCESS_KEY;
const secretKey = process.env.S3_SECRET_KEY;
if (!directory || !address || !port || !accessKey || !secretKey) {
  console.error('usage: S3_ACCESS_KEY=.. S3_SECRET_KEY=.. node s3-server.js <dir> <address> <port>');
  process.exit(2);
}
fs.mkdirSync(directory, { recursive: true });
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

const server = new S3rver({ directory, address, port: Number(port), silent: process.env.S3_VERBOSE !== '1' });
server.run().then(({ address: a, port: p }) => {
  console.log(`object store (s3rver) listening on http://${a}:${p}, data in ${directory}`);
}, err => {
  console.error(err);
  process.exit(1);
});
const stop = () => server.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
