#!/usr/bin/env python3
"""Checks the crate graph: the layering of docs/architecture.md, one version of the core stack,
and no import circles between the modules of a crate.

Fails (exit 1) when
- a workspace crate depends on a Flotilla crate or a third-party crate it must not use,
- a second version of arrow, parquet, datafusion, sqlparser, object_store, tonic or prost is built, or
- the top-level modules of a crate's src/ import each other in a circle (`crate::a` in a/ or
  a.rs reaching `crate::b`, and back), beyond the circles listed in KNOWN_CIRCLES.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

# Which Flotilla crates each crate may depend on (normal and build dependencies).
ALLOWED = {
    "flotilla-common": set(),
    "flotilla-federation": {"flotilla-common"},
    "flotilla-distributed": {"flotilla-common"},
    "flotilla-flightsql": {"flotilla-common", "flotilla-federation"},
    # Sessions and users are the Flight SQL service's; the PostgreSQL port serves the same.
    "flotilla-pgwire": {"flotilla-common", "flotilla-federation", "flotilla-flightsql"},
    "flotilla-tpch": {"flotilla-common"},
    "flotilla-testkit": {"flotilla-common", "flotilla-tpch"},
    "flotilla-node": None,  # the node wires every source, the servers and the cluster together
    # Benchmarks start nodes and drive them; nothing but the binary uses them.
    "flotilla-bench": None,
    # The binary: the command line over the node and the benchmarks.
    "flotilla": {"flotilla-node", "flotilla-bench", "flotilla-common", "flotilla-flightsql",
                 "flotilla-tpch"},
}
CONNECTOR_ALLOWED = {"flotilla-common", "flotilla-federation"}
# Third-party crates a Flotilla crate must not use directly.
FORBIDDEN_EXTERNAL = {
    "flotilla-federation": {"tonic", "arrow-flight", "rusqlite", "tokio-postgres", "mysql_async"},
}
# Circles that exist and are being untied (each an open issue's work): a circle may only
# shrink. Remove a crate from here when its circle is gone. None today: keep it so.
KNOWN_CIRCLES: dict[str, set[str]] = {}
CORE = re.compile(r"^(arrow|parquet|datafusion|sqlparser|object_store|tonic|prost)(-[a-z-]+)? v")


def module_circles(src: Path) -> list[list[str]]:
    """The circles (strongly connected groups of two or more) among the imports of the
    top-level modules of `src` (tests at the end of a file left out)."""
    modules: dict[str, list[Path]] = {}
    for path in src.rglob("*.rs"):
        top = path.relative_to(src).parts[0].removesuffix(".rs")
        if top not in ("lib", "main"):
            modules.setdefault(top, []).append(path)
    graph = {module: set() for module in modules}
    uses = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
    for module, paths in modules.items():
        for path in paths:
            code = path.read_text().split("#[cfg(test)]\nmod tests")[0]
            graph[module] |= {m for m in uses.findall(code) if m in graph and m != module}
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def circle_problems(root: Path) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    for manifest in sorted(root.glob("crates/**/Cargo.toml")):
        crate = manifest.parent.relative_to(root).as_posix()
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        allowed = KNOWN_CIRCLES.get(crate, set())
        circles = module_circles(src)
        for circle in circles:
            extra = sorted(set(circle) - allowed)
            if extra:
                problems.append(
                    f"{crate}: modules import each other in a circle: {' -> '.join(circle)} "
                    f"(new in it: {', '.join(extra)}); move what both need into a module of "
                    "its own"
                )
        if crate in KNOWN_CIRCLES and not circles:
            notes.append(f"{crate} has no module circle any more: remove it from KNOWN_CIRCLES")
    return problems, notes


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
                problems.append(f"{name} must not depend on {dep} (see docs/architecture.md)")
        for dep in sorted({d["name"] for d in deps} & FORBIDDEN_EXTERNAL.get(name, set())):
            problems.append(f"{name} must not depend on {dep} (see docs/architecture.md)")

    tree = subprocess.run(
        ["cargo", "tree", "--workspace", "-e", "normal,build,dev", "-d", "--depth", "0",
         "--prefix", "none", "--locked"],
        check=True, capture_output=True, text=True,
    ).stdout
    duplicates = sorted({line.split(" (")[0] for line in tree.splitlines() if CORE.match(line)})
    if duplicates:
        problems.append("more than one version of a core crate is built: " + ", ".join(duplicates))

    circles, notes = circle_problems(Path(__file__).resolve().parent.parent)
    problems.extend(circles)
    problems.extend(notes)

    if problems:
        print("dependency check failed:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"dependency check: {len(meta['packages'])} crates follow the layering; "
          "one version each of arrow, datafusion, tonic and prost; "
          + (f"no new module circles ({len(KNOWN_CIRCLES)} crates still have one being untied)"
             if KNOWN_CIRCLES else "no module circles in any crate"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
