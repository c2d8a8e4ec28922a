"""Regenerates envoy.pb: the FileDescriptorSet of the Envoy v3 protos meshbridge-envoy renders.

    python3 -m venv /tmp/xds && /tmp/xds/bin/pip install xds-protos==1.85.0
    /tmp/xds/bin/python adapters/envoy/descriptors/gen.py adapters/envoy/descriptors/envoy.pb

Only used to print proto3 JSON (`meshbridge translate --mesh envoy`) and to encode the
resources from that JSON; the gRPC service and discovery messages come from `envoy-types`.
"""
import importlib
import sys

from google.protobuf import descriptor_pb2

MODULES = [
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.network.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2",
    "envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2",
    "envoy.extensions.filters.listener.http_inspector.v3.http_inspector_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
]

seen = {}


def add(fd):
    if fd.name in seen:
        return
    for dep in fd.dependencies:
        add(dep)
    p = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(p)
    seen[fd.name] = p


for m in MODULES:
    add(importlib.import_module(m).DESCRIPTOR)

fds = descriptor_pb2.FileDescriptorSet()
fds.file.extend(seen.values())
with open(sys.argv[1], "wb") as f:
    f.write(fds.SerializeToString())
print(len(seen), "files")
