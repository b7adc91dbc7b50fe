// A Node producer for signgate's interop matrix (tests/it/interop_matrix.rs): @signpdf/signpdf with
// @signpdf/signer-p12 (node-forge; RSA only) and @signpdf/placeholder-plain, from the npm registry
// (package-lock.json; tests/run runs `npm ci`). Nothing here is signgate code.
//
// usage: node sign.js versions            one line: the producer's versions
//        node sign.js P12 IN.pdf OUT.pdf  adbe.pkcs7.detached over IN, PKCS#12 password "demo"
'use strict';

const fs = require('fs');
const path = require('path');

function version(pkg) {
  const file = path.join(__dirname, 'node_modules', ...pkg.split('/'), 'package.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

async function main(argv) {
  if (argv[0] === 'versions') {
    console.log(`@signpdf/signpdf ${version('@signpdf/signpdf')}, node-forge ${version('node-forge')}`);
    return;
  }
  if (argv.length !== 3) {
    throw new Error('usage: node sign.js P12 IN.pdf OUT.pdf');
  }
  const [p12, input, output] = argv;
  const signpdf = require('@signpdf/signpdf').default;
  const { P12Signer } = require('@signpdf/signer-p12');
  const { plainAddPlaceholder } = require('@signpdf/placeholder-plain');
  const pdfBuffer = plainAddPlaceholder({
    pdfBuffer: fs.readFileSync(input),
    reason: 'signgate interop matrix',
    contactInfo: 'interop@signgate.test',
    name: 'signpdf interop signer',
    location: 'Bac Ninh',
    signatureLength: 16384,
  });
  const signer = new P12Signer(fs.readFileSync(p12), { passphrase: 'demo' });
  fs.writeFileSync(output, await signpdf.sign(pdfBuffer, signer));
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
