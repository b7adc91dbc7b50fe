#!/usr/bin/env python3
"""Validate many PDFs in one Python process with pyHanko and print the rate: the reference
side of `cargo bench --bench verify`.

usage: pyhanko_bench_validate.py ROOT.pem|- FILE.pdf...
Prints one JSON line: {"files": N, "passed": M, "errors": E, "elapsed_s": T}. Every
signature must be intact, valid and trusted for a file to count as passed; `-` gives no trust
root (`cargo bench --bench verify_many` over third-party files); a file whose validation
raises counts as an error, and the loop goes on.
"""
import json
import logging
import sys
import time

from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext


def main():
    logging.disable(logging.CRITICAL)
    root, files = sys.argv[1], sys.argv[2:]
    roots = [] if root == "-" else list(load_certs_from_pemder([root]))
    passed = errors = 0
    start = time.perf_counter()
    for path in files:
        with open(path, "rb") as f:
            try:
                reader = PdfFileReader(f)
                ok = True
                for emb in reader.embedded_signatures:
                    vc = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
                    status = validate_pdf_signature(emb, signer_validation_context=vc)
                    ok = ok and status.intact and status.valid and status.trusted
                passed += ok
            except Exception:
                errors += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"files": len(files), "passed": passed, "errors": errors, "elapsed_s": elapsed}))


if __name__ == "__main__":
    main()
