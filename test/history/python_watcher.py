"""Watches a table with the Python SDK (auto_resume) and prints each item as
one JSON line, in the CLI's `watch --json` shape, for the history tests.

usage: python_watcher.py ADDRESS TABLE [START_REVISION TABLE_UID]
An error that ends the watch is printed as {"error": REASON} and exits 1.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

from session_registry import SessionRegistryClient, SessionRegistryError  # noqa: E402


def session_json(s):
    return {"id": s.id, "projectPath": s.project_path, "revision": s.revision}


def main():
    address, table = sys.argv[1], sys.argv[2]
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    uid = sys.argv[4] if len(sys.argv) > 4 else ""
    # Fast reconnects, so that a restarted daemon is found again at once.
    options = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
               ("grpc.max_reconnect_backoff_ms", 200)]
    with SessionRegistryClient(address, options=options) as client:
        try:
            for item in client.watch(table=table, start_revision=start, table_uid=uid, auto_resume=True,
                                     backoff={"initial": 0.02, "max": 0.2}):
                if item.kind == "snapshot":
                    line = {"kind": "snapshot", "revision": item.revision, "tableUid": item.table_uid,
                            "resync": item.resync, "sessions": [session_json(s) for s in item.sessions]}
                else:
                    line = {"kind": "event", "revision": item.revision, "tableUid": item.table_uid,
                            "type": item.type, "session": session_json(item.session)}
                print(json.dumps(line), flush=True)
        except SessionRegistryError as e:
            print(json.dumps({"error": e.reason or str(e.code)}), flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
