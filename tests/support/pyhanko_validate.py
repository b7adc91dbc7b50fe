#!/usr/bin/env python3
"""Validate every signature of a PDF with pyHanko (an independent oracle for signgate's tests).

usage: pyhanko_validate.py FILE.pdf --trust ROOT.pem [--trust ...] [--other-certs C.pem ...]
                           [--allow-fetching] [--revocation-mode soft-fail|hard-fail|require]
                           [--validation-time 2030-01-01T00:00:00+00:00] [--no-strict]

Prints one JSON document on stdout:
  {"signatures": [ {field, kind, intact, valid, trusted, bottom_line, coverage,
                    modification_level, docmdp_ok, docmdp_level, timestamp_valid,
                    timestamp_trusted, signer_subject, md_algorithm, mechanism,
                    signing_time, trust_problem, summary, details} ... ]}
`kind` is "signature" or "document_timestamp". `coverage` is pyHanko's
SignatureCoverageLevel name (ENTIRE_FILE, ENTIRE_REVISION, CONTIGUOUS_BLOCK_FROM_START,
UNCLEAR), `modification_level` a ModificationLevel name (NONE, LTA_UPDATES,
FORM_FILLING, ANNOTATIONS, OTHER) or null. `timestamp_valid` is null without a
signature time-stamp. Exit status 0 when the file was read (whatever the verdicts),
2 on usage or read errors (message on stderr).
"""

import argparse
import logging
import json
import sys
from datetime import datetime

from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext


def enum_name(value):
    if value is None:
        return None
    return getattr(value, "name", str(value))


def safe(fn, default=None):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - report, don't crash the harness
        return default if default is not None else f"error: {e}"


def timestamp_fields(ts):
    if ts is None:
        return {"timestamp_valid": None, "timestamp_trusted": None, "timestamp_time": None}
    return {
        "timestamp_valid": bool(ts.intact and ts.valid),
        "timestamp_trusted": bool(ts.trusted),
        "timestamp_time": ts.timestamp.isoformat() if ts.timestamp else None,
    }


def describe(emb, status, kind):
    cert = status.signing_cert
    out = {
        "field": emb.field_name,
        "kind": kind,
        "intact": bool(status.intact),
        "valid": bool(status.valid),
        "trusted": bool(status.trusted),
        # DocumentTimestampStatus has no bottom_line; its verdict is intact + valid + trusted.
        "bottom_line": bool(getattr(status, "bottom_line", status.intact and status.valid and status.trusted)),
        "coverage": enum_name(status.coverage),
        "modification_level": enum_name(getattr(status, "modification_level", None)),
        "docmdp_ok": getattr(status, "docmdp_ok", None),
        "docmdp_level": enum_name(safe(lambda: emb.docmdp_level, default="")) or None,
        "signer_subject": cert.subject.human_friendly if cert is not None else None,
        "md_algorithm": status.md_algorithm,
        "mechanism": status.pkcs7_signature_mechanism,
        "signing_time": None,
        "trust_problem": enum_name(status.trust_problem_indic),
        "summary": safe(status.summary) if hasattr(status, "summary") else None,
        "details": safe(status.pretty_print_details) if hasattr(status, "pretty_print_details") else None,
    }
    if kind == "signature":
        srdt = status.signer_reported_dt
        out["signing_time"] = srdt.isoformat() if srdt else None
        out.update(timestamp_fields(status.timestamp_validity))
    else:
        out.update(timestamp_fields(status))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pdf")
    ap.add_argument("--trust", action="append", default=[])
    ap.add_argument("--other-certs", action="append", default=[])
    ap.add_argument("--allow-fetching", action="store_true")
    ap.add_argument("--revocation-mode", default="soft-fail",
                    choices=["soft-fail", "hard-fail", "require"])
    ap.add_argument("--validation-time")
    ap.add_argument("--no-strict", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="keep pyHanko logging on stderr")
    args = ap.parse_args()
    if not args.verbose:
        logging.disable(logging.CRITICAL)

    def vc():
        kwargs = dict(
            trust_roots=[c for f in args.trust for c in load_certs_from_pemder([f])],
            other_certs=[c for f in args.other_certs for c in load_certs_from_pemder([f])],
            allow_fetching=args.allow_fetching,
            revocation_mode=args.revocation_mode,
        )
        if args.validation_time:
            kwargs["moment"] = datetime.fromisoformat(args.validation_time)
        return ValidationContext(**kwargs)

    try:
        f = open(args.pdf, "rb")
        reader = PdfFileReader(f, strict=not args.no_strict)
        sigs = reader.embedded_signatures
    except Exception as e:  # noqa: BLE001
        print(f"pyhanko_validate: cannot read {args.pdf}: {e}", file=sys.stderr)
        sys.exit(2)

    results = []
    for emb in sigs:
        try:
            if emb.sig_object_type == "/DocTimeStamp":
                st = validate_pdf_timestamp(emb, validation_context=vc())
                results.append(describe(emb, st, "document_timestamp"))
            else:
                st = validate_pdf_signature(emb, signer_validation_context=vc(),
                                            ts_validation_context=vc())
                results.append(describe(emb, st, "signature"))
        except Exception as e:  # noqa: BLE001 - a broken signature is a verdict, not a crash
            results.append({"field": emb.field_name, "kind": "error", "intact": False,
                            "valid": False, "trusted": False, "bottom_line": False,
                            "error": f"{type(e).__name__}: {e}"})
    json.dump({"signatures": results}, sys.stdout, indent=1, default=str)
    print()


if __name__ == "__main__":
    main()
