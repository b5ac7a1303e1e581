#!/usr/bin/env python3
"""Checks the crate graph: the layering of ARCHITECTURE.md and one version of the core stack.

Fails (exit 1) when
- a workspace crate depends on a Flotilla crate or a third-party crate it must not use, or
- a second version of arrow, parquet, datafusion, sqlparser, object_store, tonic or prost is built.
"""
import json
import re
import subprocess
import sys

# Which Flotilla crates each crate may depend on (normal and build dependencies).
ALLOWED = {
    "flotilla-common": set(),
    "flotilla-federation": {"flotilla-common"},
    "flotilla-distributed": {"flotilla-common"},
    "flotilla-flightsql": {"flotilla-common", "flotilla-federation"},
    "flotilla-tpch": {"flotilla-common"},
    "flotilla-testkit": {"flotilla-common", "flotilla-tpch"},
    "flotilla": None,  # the node wires everything together
}
CONNECTOR_ALLOWED = {"flotilla-common", "flotilla-federation"}
# Third-party crates a Flotilla crate must not use directly.
FORBIDDEN_EXTERNAL = {
    "flotilla-federation": {"tonic", "arrow-flight", "rusqlite", "tokio-postgres", "mysql_async"},
}
CORE = re.compile(r"^(arrow|parquet|datafusion|sqlparser|object_store|tonic|prost)(-[a-z-]+)? v")


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    problems = []
    for package in meta["packages"]:
        name = package["name"]
        deps = [d for d in package["dependencies"] if d["kind"] in (None, "build")]
        ours = {d["name"] for d in deps if d["name"].startswith("flotilla")}
        if "flotilla-testkit" in ours:
            problems.append(f"{name} uses flotilla-testkit as a normal dependency (dev only)")
        if name.startswith("flotilla-connectors-"):
            allowed = CONNECTOR_ALLOWED
        elif name in ALLOWED:
            allowed = ALLOWED[name]
        else:
            problems.append(f"{name} is not in the layering table of scripts/check-deps.py")
            continue
        if allowed is not None:
            for dep in sorted(ours - allowed - {"flotilla-testkit"}):
                problems.append(f"{name} must not depend on {dep} (see ARCHITECTURE.md)")
        for dep in sorted({d["name"] for d in deps} & FORBIDDEN_EXTERNAL.get(name, set())):
            problems.append(f"{name} must not depend on {dep} (see ARCHITECTURE.md)")

    tree = subprocess.run(
        ["cargo", "tree", "--workspace", "-e", "normal,build,dev", "-d", "--depth", "0",
         "--prefix", "none", "--locked"],
        check=True, capture_output=True, text=True,
    ).stdout
    duplicates = sorted({line.split(" (")[0] for line in tree.splitlines() if CORE.match(line)})
    if duplicates:
        problems.append("more than one version of a core crate is built: " + ", ".join(duplicates))

    if problems:
        print("dependency check failed:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"dependency check: {len(meta['packages'])} crates follow the layering; "
          "one version each of arrow, datafusion, tonic and prost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
