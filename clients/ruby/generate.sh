#!/usr/bin/env bash
# Generates the Ruby stubs for dossier.v1 from ../../proto into
# clients/ruby/lib/dossier/v1/ (git-ignored), so that with lib/ on the load path
# they load as `require 'dossier/v1/underwriting_service_services_pb'`.
#
# Needs Debian's packages (see docs/clients.md):
#   apt-get install -y ruby-grpc ruby-grpc-tools libprotobuf-dev
# ruby-grpc-tools gives grpc_tools_ruby_protoc (Debian's protoc plus the gRPC Ruby
# plugin). The well-known types (google/protobuf/timestamp.proto, struct.proto) come
# from libprotobuf-dev in /usr/include; PROTOBUF_INCLUDE overrides where to look.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
protoc="${GRPC_TOOLS_RUBY_PROTOC:-grpc_tools_ruby_protoc}"

if ! command -v "$protoc" >/dev/null 2>&1; then
  echo "generate.sh: $protoc not found; run: apt-get install -y ruby-grpc ruby-grpc-tools libprotobuf-dev" >&2
  exit 1
fi

wkt_include="${PROTOBUF_INCLUDE:-}"
if [[ -z "$wkt_include" ]]; then
  for dir in /usr/include /usr/local/include; do
    if [[ -f "$dir/google/protobuf/timestamp.proto" && -f "$dir/google/protobuf/struct.proto" ]]; then
      wkt_include="$dir"
      break
    fi
  done
fi
if [[ -z "$wkt_include" || ! -f "$wkt_include/google/protobuf/timestamp.proto" ]]; then
  echo "generate.sh: google/protobuf/timestamp.proto not found (looked in ${wkt_include:-/usr/include /usr/local/include});" >&2
  echo "  run: apt-get install -y libprotobuf-dev, or set PROTOBUF_INCLUDE" >&2
  exit 1
fi

out="$here/lib"
mkdir -p "$out"
rm -rf "$out/dossier/v1"

cd "$proto_root"
"$protoc" \
  -I "$proto_root" \
  -I "$wkt_include" \
  --ruby_out="$out" \
  --grpc_out="$out" \
  dossier/v1/*.proto

echo "generated Ruby stubs in $out/dossier/v1 (well-known types from $wkt_include)"
