#!/usr/bin/env bash
# Generates the Python stubs for dossier.v1 from ../../proto into
# clients/python/dossier/v1/ (git-ignored), so that they import as
# `from dossier.v1 import underwriting_service_pb2`.
#
# Needs: python3 -m pip install -r clients/python/requirements.txt
# grpc_tools bundles protoc and the google/protobuf well-known types
# (timestamp.proto, struct.proto), so no system protoc is needed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
python="${PYTHON:-python3}"

if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "generate.sh: grpcio-tools is not installed for $python;" >&2
  echo "  run: $python -m pip install -r $here/requirements.txt" >&2
  exit 1
fi

out="$here"
rm -rf "$out/dossier"

cd "$proto_root"
"$python" -m grpc_tools.protoc \
  -I "$proto_root" \
  --python_out="$out" \
  --pyi_out="$out" \
  --grpc_python_out="$out" \
  dossier/v1/*.proto

# Regular packages rather than namespace packages, so nothing else called
# `dossier` on sys.path can shadow them.
touch "$out/dossier/__init__.py" "$out/dossier/v1/__init__.py"

echo "generated Python stubs in $out/dossier/v1"
