"""One call of a published Nexon client (PyPI `maplestory-openapi` 2.13.1) against a base URL.

Usage: nexon_client.py BASE_URL API_KEY CALL ARG
  CALL: `id` (get_character_id(ARG)) or `basic` (get_character_basic(ARG)).
Prints one JSON line: {"ok": …} for data, {"error_code": …, "message": …} for the client's
own API exception (what it builds from Nexon's error document), {"other": …} for anything
else (e.g. a validation error when the body is not Nexon's shape).
"""

import json
import sys

from maplestory_openapi.api.maplestory_api import MapleStoryApi
from maplestory_openapi.api.maplestory_api_error import MapleStoryApiException


def main() -> None:
    base, key, call, arg = sys.argv[1:5]
    api = MapleStoryApi(api_key=key, timeout=30)
    api.BASE_URL = base if base.endswith("/") else base + "/"
    try:
        if call == "id":
            out = {"ok": api.get_character_id(arg).ocid}
        elif call == "basic":
            out = {"ok": api.get_character_basic(arg).character_name}
        else:
            raise SystemExit(f"unknown call {call}")
    except MapleStoryApiException as e:
        out = {"error_code": e.error_code, "message": e.message}
    except Exception as e:  # noqa: BLE001 - the test wants to see any other failure's kind
        out = {"other": type(e).__name__, "text": str(e)[:300]}
    print(json.dumps(out))


main()
