#!/usr/bin/env python3
"""Prints "passed failed" summed over GoogleTest XML reports (skipped tests count as neither)."""
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        failed += 1  # the binary died before writing its report
        continue
    for case in root.iter("testcase"):
        if case.get("result") == "skipped" or case.get("status") == "notrun" or case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
print(passed, failed)
