#!/usr/bin/env python3
"""Runs two `signgate` binaries' `verify --offline --jobs 1` over the same PDFs and reports
any difference between their JSON reports, time-of-verification values aside (an RFC 3339
time within a day of now, such as the best signature time of a signature without a
time-stamp, is replaced by "NOW").

    scripts/compare_verify_reports.py OLD_BINARY NEW_BINARY FILE...

Exit status 0 when every report is identical, 1 otherwise."""

import datetime
import json
import subprocess
import sys

NOW = datetime.datetime.now(datetime.timezone.utc)


def normalize(value):
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and "T" in value:
        try:
            at = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo and abs((at - NOW).total_seconds()) < 86400:
                return "NOW"
        except ValueError:
            pass
    return value


def reports(binary, files):
    out = subprocess.run(
        [binary, "verify", "--offline", "--jobs", "1", *files],
        capture_output=True,
        check=False,
    ).stdout.decode()
    return [normalize(json.loads(line)) for line in out.splitlines() if line.strip()]


def main():
    old_bin, new_bin, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    old, new = reports(old_bin, files), reports(new_bin, files)
    differing = 0
    if len(old) != len(new):
        print(f"{len(old)} reports from {old_bin}, {len(new)} from {new_bin}")
        differing += 1
    for a, b in zip(old, new):
        if a != b:
            differing += 1
            print(f"DIFFERENT: {a.get('file')}")
            print("  old:", json.dumps(a, sort_keys=True)[:2000])
            print("  new:", json.dumps(b, sort_keys=True)[:2000])
    print(f"{len(old)} reports compared, {differing} different")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
