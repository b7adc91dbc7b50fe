#!/usr/bin/env bash
# Regenerates the PDF test corpus in tests/data/pdfs/ and tests/data/sample.pdf.
# Outputs are committed; run this only to change the corpus:
#     tests/data/pdfs/make_corpus.sh          (from the repository root, after ./tests/run made .venv)
# Needs: python3, qpdf, poppler-utils (pdftocairo), ghostscript, openssl, and the test venv (pyhanko).
#
# Deterministic: rerunning gives byte-identical files, except the outputs that carry
# fresh randomness (AES salts, signatures, keys): encrypted.pdf, certified-p1.pdf and
# tests/data/pki-throwaway/*. Those are only (re)made when missing or with FORCE=1.
set -euo pipefail
cd "$(dirname "$0")/../../.."
D=tests/data/pdfs
PKI=tests/data/pki-throwaway
VENV=${SIGNGATE_TEST_VENV:-$PWD/.venv}
export SOURCE_DATE_EPOCH=1751337000   # 2025-07-01T02:30:00Z, for producers that honour it
QPDF="qpdf --deterministic-id"

python3 $D/make_pdfs.py $D                 # simple, rotated-3p, hybrid, incremental, sample
mv $D/sample.pdf tests/data/sample.pdf

# same document, other structures (qpdf)
$QPDF --object-streams=generate $D/rotated-3p.pdf $D/objstm.pdf                  # xref stream + object streams
$QPDF --object-streams=disable --force-version=1.4 $D/objstm.pdf $D/classic-1.4.pdf  # classic xref, PDF 1.4
$QPDF --linearize $D/rotated-3p.pdf $D/linearized.pdf                            # linearized (fast web view)

# other producers
pdftocairo -pdf tests/data/sample.pdf $D/cairo.pdf
gs -q -dNOPAUSE -dBATCH -dSAFER -sDEVICE=pdfwrite -o $D/ghostscript.pdf $D/rotated-3p.pdf
python3 $D/make_pdfs.py normalize $D/cairo.pdf $D/ghostscript.pdf

# bad inputs
head -c 700 $D/simple.pdf > $D/truncated.pdf        # cut inside the content stream, no xref/trailer
printf 'This is not a PDF file.\nsigngate must answer PDF_MALFORMED.\n' > $D/not-a-pdf.txt

for f in $D/*.pdf tests/data/sample.pdf; do
  case $f in */truncated.pdf|*/encrypted.pdf|*/certified-p1.pdf) continue;; esac
  qpdf --check "$f" >/dev/null || { echo "qpdf --check failed: $f" >&2; exit 1; }
done

# --- outputs with randomness: only when missing or FORCE=1 ---
FORCE=${FORCE:-0}
if [[ $FORCE == 1 || ! -f $D/encrypted.pdf ]]; then
  qpdf --encrypt user owner 256 -- $D/simple.pdf $D/encrypted.pdf   # AES-256, user password "user"
fi
if [[ $FORCE == 1 || ! -f $PKI/signer.pem ]]; then
  mkdir -p $PKI
  cat > $PKI/ext.cnf <<'CNF'
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[signer]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
  openssl req -x509 -newkey rsa:2048 -nodes -keyout $PKI/root.key -out $PKI/root.pem -days 7300 \
    -subj "/C=VN/O=signgate TEST ONLY/CN=signgate throwaway test root" \
    -config <(cat /etc/ssl/openssl.cnf $PKI/ext.cnf) -extensions root 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout $PKI/signer.key -out $PKI/signer.csr \
    -subj "/C=VN/O=signgate TEST ONLY/CN=signgate throwaway test signer" 2>/dev/null
  openssl x509 -req -in $PKI/signer.csr -CA $PKI/root.pem -CAkey $PKI/root.key -set_serial 0x5167 \
    -days 3650 -extfile $PKI/ext.cnf -extensions signer -out $PKI/signer.pem 2>/dev/null
  rm -f $PKI/signer.csr
  FORCE=1
fi
if [[ $FORCE == 1 || ! -f $D/certified-p1.pdf ]]; then
  "$VENV/bin/python" $D/make_certified.py $D/simple.pdf $D/certified-p1.pdf \
    $PKI/signer.key $PKI/signer.pem $PKI/root.pem
fi
echo "corpus written to $D"
