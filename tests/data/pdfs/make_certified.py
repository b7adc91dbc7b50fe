#!/usr/bin/env python3
"""Certify a PDF with DocMDP P=1 (no changes allowed) using pyHanko's API.

The pyhanko CLI's --certify has no DocMDP level option (it uses P=2), hence this script.
usage: make_certified.py IN.pdf OUT.pdf KEY.pem CERT.pem CHAIN.pem
Signing time comes from the clock, so the output differs on every run.
"""
import sys

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm


def main():
    src, dst, key, cert, chain = sys.argv[1:6]
    signer = signers.SimpleSigner.load(key, cert, ca_chain_files=(chain,), key_passphrase=None)
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1",
        certify=True,
        docmdp_permissions=MDPPerm.NO_CHANGES,
        reason="signgate test fixture (DocMDP P=1)",
    )
    with open(src, "rb") as inf:
        w = IncrementalPdfFileWriter(inf)
        with open(dst, "wb") as outf:
            signers.sign_pdf(w, meta, signer=signer, output=outf)


if __name__ == "__main__":
    main()
