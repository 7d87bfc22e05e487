"""``python -m kafkalocal`` (``scripts/kafka-local``): start, stop or query a
local Apache Kafka (KRaft) fetched from Maven Central, or run Kafka's own tools."""

from __future__ import annotations

import argparse
import subprocess
import sys

from kafkalocal import secure
from kafkalocal.cluster import Cluster
from kafkalocal.common import KafkaLocalError, log
from kafkalocal.jars import TOOLS, ensure_jars, ensure_tools, tool_command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kafka-local", description="A local Apache Kafka (KRaft) fetched from Maven Central.")
    ap.add_argument("--home", help="runtime folder (default $KAFKA_LOCAL_HOME or .kafka-local)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start (or reuse) the local broker; prints the bootstrap address last")
    s.add_argument("--port", type=int, help="listener port (default: a free one)")
    s.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    s.add_argument("--secure", action="store_true",
                   help="one broker with TLS, SASL users and ACLs; prints the programs' client settings")
    sub.add_parser("stop", help="stop the local broker(s) and remove their data")
    sub.add_parser("status", help="say whether it runs and where, node by node")
    sub.add_parser("fetch", help="only fetch the broker and tools jars from Maven Central")
    for tool in TOOLS:
        t = sub.add_parser(tool, help=f"run Kafka's kafka-{tool} tool (--bootstrap-server defaults to this cluster)")
        t.add_argument("args", nargs="*", help=f"arguments of kafka-{tool}, e.g. --describe --group mtga")
    argv = list(sys.argv[1:] if argv is None else argv)
    # a tool's own arguments go to it verbatim, in their order
    at = next((i for i, a in enumerate(argv) if a in TOOLS and (i == 0 or argv[i - 1] != "--home")), None)
    tool_args = argv[at + 1:] if at is not None else []
    args = ap.parse_args(argv[:at + 1] if at is not None else argv)
    cl = Cluster(args.home)
    try:
        if args.cmd == "start":
            st = cl.start(brokers=args.brokers, port=args.port, secure=args.secure)
            if st.secure:
                print(secure.client_settings_text(cl.home))
            print(st.bootstrap)
        elif args.cmd == "stop":
            if cl.stop():
                print("stopped")
            else:
                print("not running")
        elif args.cmd == "status":
            st = cl.running()
            nodes = cl.nodes_alive()
            if st:
                pids = ",".join(str(n.pid) for n in st.nodes)
                print(f"running: {len(st.nodes)} broker(s) at {st.bootstrap} (pids {pids}, Kafka {st.version})")
                if st.secure:
                    print(f"secured: SASL_SSL at {st.bootstrap}, mutual TLS at 127.0.0.1:{st.nodes[0].tls_port}, "
                          f"ACLs deny by default; client settings in {secure.secure_dir(cl.home) / 'clients.json'}")
            elif any(up for _, up in nodes):
                down = [n.id for n, up in nodes if not up]
                print(f"partly running: {len(nodes) - len(down)} of {len(nodes)} broker(s); "
                      f"node(s) {','.join(map(str, down))} down ('start --brokers {len(nodes)}' restarts them)")
            else:
                print("not running")
                return 1
            if len(nodes) > 1 or not st:
                for n, up in nodes:
                    print(f"  node {n.id}: {n.address} (controller port {n.controller_port}) "
                          f"{'pid ' + str(n.pid) if up else 'DOWN'}, data {cl.node_dir(n.id) / 'data'}")
            return 0 if st else 2
        elif args.cmd == "fetch":
            print(ensure_jars())
            print(ensure_tools())
        elif args.cmd in TOOLS:
            rest = tool_args[1:] if tool_args[:1] == ["--"] else tool_args
            if "--bootstrap-server" not in rest and not any(a.startswith("--bootstrap-server=") for a in rest):
                alive = [n.address for n, up in cl.nodes_alive() if up]  # a node down is what one often looks into
                if not alive:
                    raise KafkaLocalError(f"no local Kafka runs from {cl.home}")
                rest = ["--bootstrap-server", ",".join(alive), *rest]
            st = cl.load()
            if st and st.secure and "--command-config" not in rest:  # the super user's client settings
                rest = ["--command-config", str(secure.secure_dir(cl.home) / "admin.properties"), *rest]
            return subprocess.call(tool_command(args.cmd, *rest))
    except KafkaLocalError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
