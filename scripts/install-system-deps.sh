#!/usr/bin/env bash
# System packages the report needs: Debian's headless Chromium (the report test drives it) and Noto CJK fonts
# (Chinese labels in PNG charts render as empty boxes without a CJK font). Idempotent and quiet when present.
set -euo pipefail
packages=(chromium fonts-noto-cjk)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install ${missing[*]} (run: sudo $0)" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
