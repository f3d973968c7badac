#!/bin/bash
# Builds the image of deploy/Dockerfile as far as this machine allows, and runs it the way
# deploy/README.md says: a private dockerd (no bridge network), the build context exactly as
# BuildKit sends it (deploy/Dockerfile.dockerignore applied), the builder stage's RUN command
# run on that context with the local toolchain (no rust image can be pulled here), then the
# final stage of deploy/Dockerfile as written, fed with that binary. The container then runs as
# deploy/README.md says (root, every capability dropped but DAC_READ_SEARCH, read-only, the
# host's /proc, /sys and / mounted read-only): one snapshot, then the server, probed from inside
# its own network namespace, which must name its own container (through this dockerd's socket)
# and measure its writable layer.
#
# Not part of `cargo test` (it needs docker.io, root, and minutes). Idempotent; state under
# ${CARGO_TARGET_DIR:-target}/deploy-check. Usage: scripts/deploy-check.sh   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "scripts/deploy-check.sh: ERROR: $*" >&2; exit 1; }
say() { echo "scripts/deploy-check.sh: $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "run as root (dockerd, host /proc)"

if ! command -v dockerd >/dev/null || [ ! -x /usr/bin/docker ]; then
    say "installing docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker.io >&2 \
        || die "apt-get install docker.io failed"
fi
# The 20.10 client of docker.io has BuildKit built in (a newer client may need buildx).
DOCKER=/usr/bin/docker

W="${CARGO_TARGET_DIR:-$ROOT/target}/deploy-check"
mkdir -p "$W"
W=$(cd "$W" && pwd)
D="$W/docker"
mkdir -p "$D"
SOCK="unix://$D/docker.sock"
dk() { "$DOCKER" -H "$SOCK" "$@"; }

DOCKERD_PID=
CONTAINER=
cleanup() {
    if [ -n "$CONTAINER" ]; then dk rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    fi
}
trap cleanup EXIT

# --- a private dockerd: no bridge, no iptables (never docker0) ---
if [ -f "$D/dockerd.pid" ] && kill -0 "$(cat "$D/dockerd.pid")" 2>/dev/null; then
    die "a dockerd from an earlier run still holds $D (pid $(cat "$D/dockerd.pid")); stop it first"
fi
dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
    -H "$SOCK" >"$D/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 100); do dk version >/dev/null 2>&1 && break; sleep 0.2; done
dk version >/dev/null 2>&1 || die "dockerd did not answer (log: $D/dockerd.log)"
say "dockerd $(dk version --format '{{.Server.Version}}') on $SOCK"

# --- 1. the build context, as BuildKit filters it ---
rm -rf "$W/ctxprobe" "$W/context"
mkdir -p "$W/ctxprobe"
printf 'FROM scratch\nCOPY . /ctx/\n' >"$W/ctxprobe/Dockerfile"
cp deploy/Dockerfile.dockerignore "$W/ctxprobe/Dockerfile.dockerignore"
DOCKER_BUILDKIT=1 dk build -q -f "$W/ctxprobe/Dockerfile" -o "type=local,dest=$W/context" . >/dev/null
say "build context: $(du -sh "$W/context/ctx" | cut -f1), $(find "$W/context/ctx" -type f | wc -l) files"
[ ! -e "$W/context/ctx/target" ] || die "target/ is in the build context"

# --- 2. the builder stage's RUN, on that context, with the local toolchain ---
# The RUN instruction of the builder stage, continuation lines joined, --mount flags dropped,
# /out mapped to a directory of ours. target/ is kept between runs, like the cache mount.
run_cmd=$(python3 - deploy/Dockerfile "$W/out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stages = re.split(r"(?im)^FROM\s", text)
runs = [l for l in stages[1].splitlines() if l.startswith("RUN ")]
assert len(runs) == 1, "one RUN in the builder stage"
cmd = re.sub(r"--mount=\S+\s*", "", runs[0][4:]).strip()
print(re.sub(r"(?<![\w/])/out\b", sys.argv[2], cmd))
EOF
)
mkdir -p "$W/cargo-target"
ln -sfn "$W/cargo-target" "$W/context/ctx/target"
say "builder stage: $run_cmd"
# As in the image: no cargo settings from this shell (CARGO_TARGET_DIR would move target/).
(cd "$W/context/ctx" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
    -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS sh -euc "$run_cmd") >&2 \
    || die "the builder stage's command failed"
file "$W/out/collector-exporter" | grep -q "statically linked\|static-pie linked" \
    || die "the binary is not static: $(file "$W/out/collector-exporter")"

# --- 3. the final stage as written, fed with that binary ---
rm -rf "$W/final"
mkdir -p "$W/final/out"
cp "$W/out/collector-exporter" "$W/final/out/"
python3 - deploy/Dockerfile >"$W/final/Dockerfile" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
last = max(i for i, l in enumerate(lines) if re.match(r"(?i)FROM\s", l))
for l in lines[last:]:
    print(re.sub(r"^COPY --from=builder /out/", "COPY out/", l))
EOF
grep -q '^COPY out/' "$W/final/Dockerfile" || die "final stage does not COPY --from=builder /out/"
DOCKER_BUILDKIT=1 dk build -q -t collector-exporter:deploy-check "$W/final" >/dev/null
say "image: $(dk image inspect collector-exporter:deploy-check --format '{{.Size}} bytes, user {{.Config.User}}, entrypoint {{json .Config.Entrypoint}}')"

# --- 4. run it as documented (plus --network none: nothing leaves the machine) ---
RUNFLAGS=(--network none --pid=host --read-only --cap-drop=ALL --cap-add=DAC_READ_SEARCH
    --security-opt=no-new-privileges -v /proc:/host/proc:ro -v /sys:/host/sys:ro -v /:/host/rootfs:ro)
dk run --rm "${RUNFLAGS[@]}" collector-exporter:deploy-check --log.level=error snapshot >"$W/snapshot.json" \
    || die "snapshot in the container failed"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["containers"]))' "$W/snapshot.json")
[ "$n" -gt 0 ] || die "the snapshot found no container"
say "snapshot in the container: $n containers"

CONTAINER=ccol-deploy-check-$$
dk run -d --name "$CONTAINER" "${RUNFLAGS[@]}" collector-exporter:deploy-check --housekeeping.interval=1s \
    --runtime.docker-socket="/host/rootfs$D/docker.sock" --runtime.containerd-socket=off \
    --runtime.crio-socket=off >/dev/null
pid=$(dk inspect -f '{{.State.Pid}}' "$CONTAINER")
cid=$(dk inspect -f '{{.Id}}' "$CONTAINER")
grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs):' "/proc/$pid/status" | tr -s '\t' ' ' >&2
# CAP_DAC_READ_SEARCH is bit 2: 0x4, and nothing else.
grep -q '^CapEff:\s*0*4$' "/proc/$pid/status" || die "capabilities: $(grep ^CapEff: "/proc/$pid/status")"
code=
for _ in $(seq 50); do
    code=$(nsenter -t "$pid" -n curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9338/healthz || true)
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] || die "/healthz answered '$code' ($(dk logs "$CONTAINER" 2>&1 | tail -3))"
series=$(nsenter -t "$pid" -n curl -sf http://127.0.0.1:9338/metrics | grep -c '^container_cpu_usage_seconds_total' || true)
[ "$series" -gt 0 ] || die "/metrics has no container_cpu_usage_seconds_total"
say "server in the container: /healthz 200, /metrics $series container_cpu_usage_seconds_total series"
# Its own container, named by the runtime, with its writable layer measured (the first walk
# may take a moment).
own=
for _ in $(seq 50); do
    own=$(nsenter -t "$pid" -n curl -sf "http://127.0.0.1:9338/api/v1/containers/$cid" || true)
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d[0] if isinstance(d,list) else d; sys.exit(0 if d["meta"]["name"] and d["stats"].get("fs") else 1)' "$own" 2>/dev/null && break
    sleep 0.2
done
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d[0] if isinstance(d,list) else d; print("scripts/deploy-check.sh: its own container:", d["meta"]["name"], d["meta"]["image"], "layer", d["stats"]["fs"]["usage_bytes"], "bytes", file=sys.stderr)' "$own" \
    || die "no name or no layer figures for its own container: $own"
say "OK"
