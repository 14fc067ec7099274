#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine; a no-op when it is all present.
# System: libzstd-dev, liblz4-dev, libcurl4-openssl-dev (the C libraries we link), zstd and lz4
# (the command-line tools the codec benchmark compares against), nginx (the S3 benchmark's
# loopback file server), curl (the CLI the http and S3 benchmarks compare against).
# Python: moto with its server extra (the S3 stand-in for tests), boto3.
set -euo pipefail

apt_packages=(libzstd-dev liblz4-dev libcurl4-openssl-dev zstd lz4 nginx curl pkg-config)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import moto.server, flask, flask_cors, boto3' 2>/dev/null; then
    echo "setup: installing moto[server] and boto3"
    python3 -m pip install --quiet 'moto[server]>=5' boto3
fi
if ! command -v aws >/dev/null 2>&1; then
    echo "setup: installing awscli"
    python3 -m pip install --quiet awscli
fi
