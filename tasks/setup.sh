#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for arcface: system packages, Deno, the `yaml`
# package in node_modules/, and the native library. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake pkg-config
  libdnnl-dev libopenblas-dev libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev
  libgloo-dev redis-server redis-tools iproute2 libgtest-dev
  node-yaml python3-torch python3-numpy python3-pil
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A Debian-managed python refuses system-wide installs (PEP 668): then install for the user.
pip_install() {
  python3 -m pip install -q "$@" || python3 -m pip install -q --user --break-system-packages "$@"
}

if ! command -v deno >/dev/null 2>&1; then
  echo "setup: installing Deno from PyPI"
  pip_install "deno>=2.5,<3"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
  if ! command -v deno >/dev/null 2>&1 && [ -x "$HOME/.local/bin/deno" ]; then
    export PATH="$HOME/.local/bin:$PATH"
    echo "setup: Deno is in ~/.local/bin: add it to PATH (export PATH=\"\$HOME/.local/bin:\$PATH\")"
  fi
fi
deno --version | head -1

# The reference safetensors reader/writer, for the round-trip tests.
python3 -c "import safetensors, numpy" 2>/dev/null || pip_install safetensors numpy

# node_modules/ as `deno install` would fill it where npm is reachable: the yaml package
# from Debian's node-yaml, and an empty @types/node (Deno has the node:* types built in).
mkdir -p node_modules/@types
if [ ! -e node_modules/yaml/package.json ] || [ -L node_modules/yaml ]; then
  rm -rf node_modules/yaml && cp -rL /usr/share/nodejs/yaml node_modules/yaml
fi
[ -e node_modules/@types/node/package.json ] || ln -sfn ../../tasks/types-node node_modules/@types/node

# For the PATH python: onnx/onnxruntime (the ONNX export tests run exported models there),
# tensorboard (the event-file test reads our files with it) and scikit-learn (the IJB ROC
# test compares with its roc_curve).
if ! python3 -c "import onnx, onnxruntime, numpy, tensorboard, sklearn" >/dev/null 2>&1; then
  echo "setup: installing onnx onnxruntime numpy tensorboard scikit-learn with pip"
  pip_install onnx onnxruntime numpy tensorboard scikit-learn
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -E "(error|warning):" || true
test -f build/libarcface.so && echo "setup: built build/libarcface.so"
