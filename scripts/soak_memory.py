"""The driver of scripts/soak-memory.sh: N new characters' expectations against core on
127.0.0.1:8080, 8 at a time; RSS of --pid every 1,000; the caches' sizes at the end."""
import argparse
import concurrent.futures
import time
import urllib.request

CORE = "http://127.0.0.1:8080"
PROXY_ADMIN = "http://127.0.0.1:9081"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def expectation(i, tag):
    url = f"{CORE}/v1/characters/{tag}{i}/expectation"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
        return 0


def samples(text, name):
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            found[labels[len(name) + 1 : -1]] = float(value)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--characters", type=int, default=15000)
    args = parser.parse_args()
    tag = "sk"
    statuses = {}
    rows = [(0, rss_mib(args.pid), 0.0)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for chunk in range(0, args.characters, 1000):
            end = min(chunk + 1000, args.characters)
            for status in pool.map(lambda i: expectation(i, tag), range(chunk, end)):
                statuses[status] = statuses.get(status, 0) + 1
            rows.append((end, rss_mib(args.pid), time.monotonic() - started))
    core = urllib.request.urlopen(f"{CORE}/metrics").read().decode()
    proxy = urllib.request.urlopen(f"{PROXY_ADMIN}/metrics").read().decode()
    print(f"statuses: {statuses}")
    print()
    print("| characters | RSS (MiB) | seconds |")
    print("|---:|---:|---:|")
    for characters, rss, seconds in rows:
        print(f"| {characters:,} | {rss:,.0f} | {seconds:,.0f} |")
    print()
    entries = samples(core, "maple_core_cache_entries")
    weighed = samples(core, "maple_core_cache_bytes")
    print("| cache | entries | MiB |")
    print("|---|---:|---:|")
    total = 0.0
    for labels, value in sorted(weighed.items()):
        total += value
        print(f"| core {labels} | {entries.get(labels, 0):,.0f} | {value / 2**20:,.1f} |")
    proxy_entries = [float(l.split()[-1]) for l in proxy.splitlines() if l.startswith("maple_proxy_cache_entries ")]
    proxy_bytes = [float(l.split()[-1]) for l in proxy.splitlines() if l.startswith("maple_proxy_cache_bytes ")]
    if proxy_bytes:
        total += proxy_bytes[0]
        print(f"| proxy responses | {proxy_entries[0]:,.0f} | {proxy_bytes[0] / 2**20:,.1f} |")
    print(f"| **all weighed** | | **{total / 2**20:,.1f}** |")


if __name__ == "__main__":
    main()
