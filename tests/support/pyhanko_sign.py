#!/usr/bin/env python3
"""Sign a PDF with pyHanko (an independent PAdES implementation) in a chosen profile, to test
that signgate accepts other tools' signatures.

usage: pyhanko_sign.py IN.pdf OUT.pdf P12 ROOT.pem MODE [--tsa URL] [--field NAME] [--pss]
MODE: bb | bt | blt | blta | certify | adbe
  bb       PAdES B-B with validation data in the DSS (fetched from the certificate's AIA/CDP)
  bt       B-B plus a signature time-stamp
  blt      B-T plus validation data for the time-stamp too (PAdES B-LT)
  blta     B-LT plus a document time-stamp (PAdES B-LTA)
  certify  a certification signature (DocMDP P=2, form filling allowed), B-B with DSS
  adbe     adbe.pkcs7.detached with Adobe's revocation-info-archival signed attribute
The P12 password is "demo". Exits non-zero with pyHanko's message on failure.
"""
import argparse

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko_certvalidator import ValidationContext
from asn1crypto import pem, x509


def load_cert(path):
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("p12")
    ap.add_argument("root")
    ap.add_argument("mode", choices=["bb", "bt", "blt", "blta", "certify", "adbe"])
    ap.add_argument("--tsa")
    ap.add_argument("--field", default="PyHankoSig")
    ap.add_argument("--pss", action="store_true")
    args = ap.parse_args()

    signer = signers.SimpleSigner.load_pkcs12(args.p12, passphrase=b"demo", prefer_pss=args.pss)
    vc = ValidationContext(trust_roots=[load_cert(args.root)], allow_fetching=True)
    timestamper = timestamps.HTTPTimeStamper(args.tsa) if args.tsa else None
    mode = args.mode
    meta = signers.PdfSignatureMetadata(
        field_name=args.field,
        subfilter=SigSeedSubFilter.ADOBE_PKCS7_DETACHED if mode == "adbe" else SigSeedSubFilter.PADES,
        embed_validation_info=True,
        validation_context=vc,
        use_pades_lta=(mode == "blta"),
        certify=(mode == "certify"),
        docmdp_permissions=MDPPerm.FILL_FORMS,
        reason="pyHanko reference signature for signgate tests",
    )
    if mode in ("bt", "blt", "blta") and timestamper is None:
        ap.error("--tsa is required for " + mode)
    with open(args.src, "rb") as inf:
        writer = IncrementalPdfFileWriter(inf)
        with open(args.dst, "wb") as outf:
            signers.sign_pdf(
                writer,
                meta,
                signer=signer,
                timestamper=timestamper if mode in ("bt", "blt", "blta") else None,
                output=outf,
            )


if __name__ == "__main__":
    main()
