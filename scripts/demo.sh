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
$rt run --bundle "$demo/bundle" "demo-$$" | python3 -c '
import json, sys
p = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(f"pid inside:      {p[\"pid\"]}")
print(f"hostname:        {p[\"hostname\"]}")
print(f"uid/gid:         {p[\"uid\"]}/{p[\"gid\"]}")
print(f"namespaces:      " + ", ".join(f"{k}:{v}" for k, v in sorted(p["namespaces"].items())))
print(f"capabilities:    effective {p[\"caps\"][\"CapEff\"]} bounding {p[\"caps\"][\"CapBnd\"]}")
print(f"no_new_privs:    {p[\"no_new_privs\"]}")
print(f"open fds:        {sorted(p[\"fds\"])}")
print(f"rlimit nofile:   {p[\"rlimits\"].get(\"Max open files\")}")
print(f"cgroup:          {p[\"cgroup\"].strip().splitlines()[:3]} ...")
print("mounts:")
for m in p["mounts"]:
    print(f"  {m[\"target\"]:<24} {m[\"fstype\"]:<8} {m[\"options\"]}")
'
echo "== host namespaces, for comparison"
for n in pid net mnt uts ipc cgroup; do printf '%s:%s ' "$n" "$(stat -Lc %i /proc/self/ns/$n)"; done; echo
