#!/usr/bin/env bash
# Build capsa-runtime and the probe, assemble a bundle around the probe (a
# static binary: no image, no network), run it as a container, and show what
# the container sees. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p capsa-runtime -p capsa-probe
bin=target/x86_64-unknown-linux-gnu/release

demo=$(mktemp -d /tmp/capsa-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/bundle/rootfs"/{proc,sys,dev,tmp}
cp "$bin/capsa-probe" "$demo/bundle/rootfs/probe"

rt="$bin/capsa-runtime --root $demo/state"
$rt spec --bundle "$demo/bundle"
# The default spec runs an interactive shell; run the probe instead.
python3 - "$demo/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/probe"]
c["hostname"] = "capsa-demo"
json.dump(c, open(p, "w"), indent=2)
PY

echo "== capsa-runtime run (the probe reports what it sees inside)"
$rt --debug run --bundle "$demo/bundle" "demo-$$" > "$demo/report.json" 2> "$demo/trace.txt"
python3 - "$demo/report.json" <<'PY'
import json, sys
p = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
caps = p["caps"]
rows = [
    ("pid inside", p["pid"]),
    ("hostname", p["hostname"]),
    ("uid/gid", "%s/%s" % (p["uid"], p["gid"])),
    ("namespaces", ", ".join("%s:%s" % kv for kv in sorted(p["namespaces"].items()))),
    ("capabilities", "effective %s bounding %s" % (caps["CapEff"], caps["CapBnd"])),
    ("no_new_privs", p["no_new_privs"]),
    ("open fds", ", ".join(sorted(p["fds"]))),
    ("rlimit nofile", p["rlimits"].get("Max open files")),
    ("cgroups", "; ".join(p["cgroup"].strip().splitlines()[:4]) + " ..."),
]
for k, v in rows:
    print("%-14s %s" % (k + ":", v))
print("mounts:")
for m in p["mounts"]:
    print("  %-24s %-8s %s" % (m["target"], m["fstype"], m["options"]))
PY
echo "== what each step of the create cost (capsa-runtime --debug)"
sed -n 's/.*msg="\(.*us .*\)"$/  \1/p' "$demo/trace.txt"
echo "== host namespaces, for comparison"
for n in pid net mnt uts ipc cgroup; do printf '%s:%s ' "$n" "$(stat -Lc %i /proc/self/ns/$n)"; done; echo
