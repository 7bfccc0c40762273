#!/usr/bin/env python3
"""Prints the slowest tests of a nextest run from its JUnit report, then one line of totals.

Usage: slowest-tests.py JUNIT_XML [N]   (N, the number of tests listed: 10 by default)

scripts/test.sh calls it after every run, so a run (and CI's log) ends with where the time
went. The last line reads `tests: P passed, F failed` (tests a filter left out are not in the
report; nextest's summary above counts them as skipped).
"""
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        print(f"no JUnit report to read ({error})", file=sys.stderr)
        return 0
    cases = []
    failed = 0
    for case in root.iter("testcase"):
        # nextest names the binary in classname (`maple-tests::e2e`), the test in name.
        name = f"{case.get('classname', '')} {case.get('name', '')}".strip()
        cases.append((float(case.get("time", "0") or 0), name))
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    cases.sort(reverse=True)
    total = sum(t for t, _ in cases)
    print(f"\nslowest {min(count, len(cases))} of {len(cases)} tests "
          f"({total:.0f} s of test time in all):")
    for seconds, name in cases[:count]:
        print(f"  {seconds:8.1f} s  {name}")
    print(f"tests: {len(cases) - failed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
