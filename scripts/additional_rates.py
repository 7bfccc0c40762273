#!/usr/bin/env python3
"""Builds data/additional_rates.csv from a scrape of Nexon's additional-potential pages.

Nexon publishes the per-line option rates of the additional potential at
https://maplestory.nexon.com/Guide/OtherProbability/cube/addi (the page's data comes from
POST .../Guide/OtherProbability/cube/GetSearchProbList with nCubeItemID=5062500, nGrade,
nPartsType, nReqLev). The input is that data as JSON rows
{cubeItemID, grade, partsType, reqLev, line, optionText, probability (a fraction)}, as a
public scrape of the page keeps it (Dae-Y/maple_tools data/cube-simulator/wcprobs.json, commit
f5369b3f, 2026-06-02: legendary only).

Usage: python3 scripts/additional_rates.py wcprobs.json > data/additional_rates.csv
"""
import csv
import json
import sys

# Nexon's nPartsType codes → the part names the engine uses. 4 (force shield / soul ring) and
# 5 (shield) are secondaries the engine does not tell apart from part 3: not shipped.
PARTS = {
    1: "weapon", 2: "emblem", 3: "secondary", 6: "hat", 7: "top", 8: "overall",
    9: "bottom", 10: "shoes", 11: "gloves", 12: "cape", 13: "belt", 14: "shoulder",
    15: "face", 16: "eye", 17: "earrings", 18: "ring", 19: "pendant", 20: "heart",
}
GRADES = {1: "rare", 2: "epic", 3: "unique", 4: "legendary"}
# The page's tables are identical for required levels 120 to 200 and differ at 100 and 250:
# one band each, named by its lowest level.
LEVELS = {100: 100, 200: 120, 250: 250}


def main() -> None:
    rows = json.load(open(sys.argv[1], encoding="utf-8"))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["part", "min_level", "grade", "line", "option", "rate_pct"])
    kept = [
        r for r in rows
        if r["cubeItemID"] == "5062500" and r["partsType"] in PARTS and r["reqLev"] in LEVELS
    ]
    kept.sort(key=lambda r: (r["partsType"], r["reqLev"], r["grade"], r["line"]))
    for r in kept:
        out.writerow([
            PARTS[r["partsType"]], LEVELS[r["reqLev"]], GRADES[r["grade"]], r["line"],
            r["optionText"], f'{r["probability"] * 100:.4f}',
        ])


if __name__ == "__main__":
    main()
