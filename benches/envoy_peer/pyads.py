"""Baseline peer for the push benchmark: a naive state-of-the-world ADS server on grpcio.aio
(PyPI `grpcio==1.85.1`, `xds-protos==1.85.0`), serving the same pre-encoded resources as
meshbridge's server to any node. Not shipped; used by `benches/envoy_xds.rs push`.

    python pyads.py SNAPSHOT.jsonl FLIP.jsonl
prints `port N rss_kb K`; each line on stdin swaps in the FLIP resources (a route change) and
prints `flipped`.
"""
import asyncio
import json
import resource
import sys

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            a = any_pb2.Any(type_url=r["type"], value=bytes.fromhex(r["value"]))
            out.setdefault(r["type"], {})[r["name"]] = a
    return out


SNAP = load(sys.argv[1])
FLIP = load(sys.argv[2])
VERSION = 1
WATCHERS = set()


class Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    async def StreamAggregatedResources(self, request_iterator, context):
        q = asyncio.Queue()
        WATCHERS.add(q)

        async def read():
            async for req in request_iterator:
                await q.put(req)
            await q.put(None)

        task = asyncio.create_task(read())
        sent = {}  # type -> (version, nonce)
        names = {}
        nonce = 0
        try:
            while True:
                item = await q.get()
                if item is None:
                    break
                if item == "changed":
                    todo = [t for t in names if sent.get(t, (None,))[0] != VERSION]
                else:
                    t = item.type_url
                    if item.response_nonce and t in sent and item.response_nonce != sent[t][1]:
                        continue  # stale
                    names[t] = list(item.resource_names)
                    if item.response_nonce and t in sent and sent[t][0] == VERSION:
                        continue  # ACK (or NACK) of the current version
                    todo = [t]
                for t in todo:
                    nonce += 1
                    res = SNAP.get(t, {})
                    want = names.get(t) or list(res)
                    yield discovery_pb2.DiscoveryResponse(
                        version_info=str(VERSION),
                        resources=[res[n] for n in want if n in res],
                        type_url=t,
                        nonce=str(nonce),
                    )
                    sent[t] = (VERSION, str(nonce))
        finally:
            WATCHERS.discard(q)
            task.cancel()


async def main():
    global VERSION
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 256 << 20)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Ads(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"port {port} rss_kb {rss}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        for t, m in FLIP.items():
            SNAP.setdefault(t, {}).update(m)
        VERSION += 1
        for q in list(WATCHERS):
            q.put_nowait("changed")
        print("flipped", flush=True)
    await server.stop(0)


asyncio.run(main())
