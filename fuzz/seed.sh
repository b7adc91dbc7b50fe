#!/usr/bin/env bash
# Fills fuzz/corpus/TARGET/ (not committed) with seed inputs for every target: the committed
# tiny seeds in fuzz/seeds/, the test fixtures (tests/data), the shared corpus beside the
# repository (../shared/corpus, or $SIGNGATE_SHARED_CORPUS) and, when the test venv has the
# cryptography-vectors package, PKITS certificates, CRLs and S/MIME signatures.
# Inputs over 1 MiB are left out (they slow libFuzzer down more than they add).
# Usage: fuzz/seed.sh            (idempotent; run from anywhere)
set -euo pipefail
FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$FUZZ")
SHARED=${SIGNGATE_SHARED_CORPUS:-$(dirname "$ROOT")/shared/corpus}
VENV=${SIGNGATE_TEST_VENV:-$ROOT/.venv}
MAX=$((1024 * 1024))

put() { # put TARGET FILE...
  local dir=$FUZZ/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do
    [[ -f $f ]] || continue
    (( $(stat -c %s "$f") <= MAX )) || continue
    cp "$f" "$dir/$(sha1sum "$f" | cut -c1-16)-$(basename "$f")"
  done
}
der_of_pem() { # der_of_pem TARGET FILE...: certificates in PEM, as DER seeds
  local dir=$FUZZ/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do
    [[ -f $f ]] || continue
    openssl x509 -in "$f" -outform der -out "$dir/$(basename "$f").der" 2>/dev/null || true
  done
}

for t in "$FUZZ"/seeds/*/; do put "$(basename "$t")" "$t"*; done

shopt -s nullglob
put pdf_verify "$ROOT"/tests/data/*.pdf "$ROOT"/tests/data/pdfs/*.pdf "$SHARED"/pdf/*.pdf
put pdf_prepare "$ROOT"/tests/data/*.pdf "$ROOT"/tests/data/pdfs/*.pdf "$SHARED"/pdf/*.pdf
put cms_tsp "$SHARED"/cms/*.p7m "$SHARED"/cms/*.p7s "$SHARED"/cms/*.sig "$SHARED"/cms/*.pkcs7
put xml_c14n "$ROOT"/tests/data/xml/*.xml "$ROOT"/tests/data/xml/c14n/*.xml "$SHARED"/xml/*.xml
put edxml_zip "$ROOT"/tests/data/xml/*.xml
der_of_pem x509_revocation "$ROOT"/tests/data/pki-throwaway/*.pem "$SHARED"/trust/*.pem
put x509_revocation "$SHARED"/trust/*.der "$SHARED"/trust/*.crt
put revocation_signed "$ROOT"/certs/demo/*.crl

PKITS=$("$VENV/bin/python" -c 'import cryptography_vectors, os; print(os.path.dirname(cryptography_vectors.__file__))' 2>/dev/null || true)
if [[ -n $PKITS && -d $PKITS/x509/PKITS_data ]]; then
  put x509_revocation "$PKITS"/x509/PKITS_data/crls/*.crl "$PKITS"/x509/PKITS_data/certs/*.crt
  put revocation_signed "$PKITS"/x509/PKITS_data/crls/*.crl
  for eml in "$PKITS"/x509/PKITS_data/smime/*.eml; do
    out=$FUZZ/corpus/cms_tsp/$(basename "$eml" .eml).p7s
    [[ -f $out ]] || openssl smime -pk7out -in "$eml" -outform der -out "$out" 2>/dev/null || true
  done
else
  echo "seed.sh: no cryptography-vectors in $VENV (./tests/run installs it): PKITS seeds left out" >&2
fi
for t in "$FUZZ"/corpus/*/; do echo "seed.sh: $(basename "$t"): $(ls "$t" | wc -l) inputs"; done
