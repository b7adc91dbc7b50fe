#!/usr/bin/env python3
"""Independent Python signers for signgate's interop matrix (tests/it/interop_matrix.rs):
pyHanko (PAdES), endesive (PDF and detached CMS) and signxml (XML-DSig enveloped), all pinned in
tests/requirements.txt; nothing here is signgate code.

usage:
  produce.py versions                                    one line: the producers' versions
  produce.py pyhanko-pdf P12 IN.pdf OUT.pdf [--tsa URL]   PAdES B-B (B-T with --tsa), no DSS
  produce.py endesive-pdf P12 IN.pdf OUT.pdf [--tsa URL]  adbe.pkcs7.detached (B-T with --tsa)
  produce.py endesive-cms P12 IN OUT.p7s [--noattrs] [--pss]
                                                         detached CMS over IN; --noattrs: a SignerInfo
                                                         without signed attributes; --pss: RSASSA-PSS
  produce.py signxml P12 IN.xml OUT.xml [--exclusive]    enveloped, SHA-256, C14N 1.0 (or exclusive)
The PKCS#12 password is "demo". Exits non-zero with the producer's message on failure.
"""
import argparse
import datetime
import importlib.metadata
import sys
import types

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12


def identity(p12):
    with open(p12, "rb") as f:
        key, cert, others = pkcs12.load_key_and_certificates(f.read(), b"demo")
    return key, cert, list(others or [])


def versions():
    names = ["pyHanko", "endesive", "signxml"]
    print(", ".join(f"{n} {importlib.metadata.version(n)}" for n in names))


def pyhanko_pdf(args):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers, timestamps
    from pyhanko.sign.fields import SigSeedSubFilter

    signer = signers.SimpleSigner.load_pkcs12(args.p12, passphrase=b"demo")
    meta = signers.PdfSignatureMetadata(
        field_name="PyHanko",
        subfilter=SigSeedSubFilter.PADES,
        reason="signgate interop matrix",
    )
    timestamper = timestamps.HTTPTimeStamper(args.tsa) if args.tsa else None
    with open(args.src, "rb") as inf, open(args.dst, "wb") as outf:
        signers.sign_pdf(
            IncrementalPdfFileWriter(inf), meta, signer=signer, timestamper=timestamper, output=outf
        )


def endesive_pdf(args):
    # endesive.pdf imports its verifier, which imports certvalidator and so oscrypto 1.3.0, whose
    # libcrypto version check fails on OpenSSL 3.0.10 and later (a two-digit patch number). Only
    # signing is used here: the verifier's import gets an empty module.
    sys.modules.setdefault("certvalidator", types.ModuleType("certvalidator"))
    from endesive.pdf import cms

    key, cert, others = identity(args.p12)
    with open(args.src, "rb") as f:
        data = f.read()
    now = datetime.datetime.now(datetime.timezone.utc)
    udct = {
        "sigflags": 3,
        "sigfield": "Endesive",
        "contact": "interop@signgate.test",
        "location": "Bac Ninh",
        "signingdate": now.strftime("D:%Y%m%d%H%M%S+00'00'"),
        "reason": "signgate interop matrix",
    }
    signed = cms.sign(data, udct, key, cert, others, "sha256", tspurl=args.tsa)
    with open(args.dst, "wb") as f:
        f.write(data + signed)


def endesive_cms(args):
    from endesive import signer

    key, cert, others = identity(args.p12)
    with open(args.src, "rb") as f:
        data = f.read()
    p7 = signer.sign(data, key, cert, others, "sha256", attrs=not args.noattrs, pss=args.pss)
    with open(args.dst, "wb") as f:
        f.write(p7)


def sign_xml(args):
    from lxml import etree
    from signxml import XMLSigner, methods

    key, cert, others = identity(args.p12)
    algorithm = "ecdsa-sha256" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa-sha256"
    c14n = (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
        if args.exclusive
        else "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    )
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=algorithm,
        digest_algorithm="sha256",
        c14n_algorithm=c14n,
    )
    pem = [c.public_bytes(serialization.Encoding.PEM) for c in [cert] + others]
    with open(args.src, "rb") as f:
        root = etree.fromstring(f.read())
    signed = signer.sign(root, key=key, cert=pem)
    with open(args.dst, "wb") as f:
        f.write(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("versions")
    for name in ["pyhanko-pdf", "endesive-pdf", "endesive-cms", "signxml"]:
        p = sub.add_parser(name)
        p.add_argument("p12")
        p.add_argument("src")
        p.add_argument("dst")
        if name in ("pyhanko-pdf", "endesive-pdf"):
            p.add_argument("--tsa")
        if name == "endesive-cms":
            p.add_argument("--noattrs", action="store_true")
            p.add_argument("--pss", action="store_true")
        if name == "signxml":
            p.add_argument("--exclusive", action="store_true")
    args = ap.parse_args()
    if args.cmd == "versions":
        versions()
    elif args.cmd == "pyhanko-pdf":
        pyhanko_pdf(args)
    elif args.cmd == "endesive-pdf":
        endesive_pdf(args)
    elif args.cmd == "endesive-cms":
        endesive_cms(args)
    else:
        sign_xml(args)


if __name__ == "__main__":
    main()
