#!/usr/bin/env bash
# Installs the system packages the build needs when they are missing: cmake, which pingora's
# zlib-ng (libz-ng-sys) builds with, and pkg-config; and any more packages named as arguments,
# each checked by the command of the same name, or given as COMMAND:PACKAGE when the package
# names its command otherwise (scripts/services.sh adds the tests' prometheus; scripts/drill.sh
# adds mariadbd:mariadb-server and the like). Idempotent and quiet when all is there; called by
# scripts/run.sh (the run command), scripts/services.sh (the test command's set-up) and
# scripts/drill.sh.
set -euo pipefail

need=()
for wanted in cmake pkg-config "$@"; do
  command="${wanted%%:*}"
  package="${wanted#*:}"
  if ! command -v "$command" >/dev/null 2>&1; then
    # One package may provide several of the commands asked for.
    case " ${need[*]} " in
      *" $package "*) ;;
      *) need+=("$package") ;;
    esac
  fi
done
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing system packages: ${need[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install ${need[*]} with this system's package manager, then run again" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "installing ${need[*]} needs root: run 'apt-get install ${need[*]}' as root, then run again" >&2
    exit 1
  fi
  sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
