#!/usr/bin/env bash
# Sets up everything consentry needs on Debian 12 with Node 20 and npm, idempotently:
#   1. Debian packages: the mediasoup worker's build deps, ffmpeg, chromium, flite, postgresql, python3-yaml
#   2. moto (local S3 API server for tests and the demo), from pip; pocketsphinx (transcription) into .venv-stt/
#   3. the mediasoup worker, built from the npm package against Debian's libraries
#      (cached in ~/.cache/consentry, keyed by mediasoup version + patch hash)
#   4. npm dependencies (locked versions), with the built worker placed where mediasoup looks for it
#   5. the server (tsc) and browser client (vite) builds
# A warm run takes ~20 s (the two builds). Set CONSENTRY_SKIP_APT=1 to skip step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
start=$(date +%s)

APT_PACKAGES=(
	g++ make patch pkg-config python3 python3-venv meson ninja-build
	libuv1-dev libssl-dev libsrtp2-dev libflatbuffers-dev flatbuffers-compiler libabsl-dev
	ffmpeg chromium flite postgresql python3-yaml
)
MOTO_VERSION=5.2.1
export CONSENTRY_CACHE_DIR="${CONSENTRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/consentry}"
mkdir -p "$CONSENTRY_CACHE_DIR"

# 1. Debian packages -------------------------------------------------------------
if [[ "${CONSENTRY_SKIP_APT:-}" != 1 ]]; then
	missing=()
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "installing Debian packages: ${missing[*]}"
		SUDO=""
		[[ $(id -u) -ne 0 ]] && SUDO="sudo"
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

# 2. moto_server (S3 API for tests and the demo) ---------------------------------
# pip's default index may be unreachable: --retries 0 --timeout 3 falls straight through
# to the machine's local wheel mirror when one is configured.
if ! command -v moto_server >/dev/null 2>&1 && [[ ! -x "$CONSENTRY_CACHE_DIR/venv/bin/moto_server" ]]; then
	log "installing moto[server]==$MOTO_VERSION into $CONSENTRY_CACHE_DIR/venv"
	python3 -m venv "$CONSENTRY_CACHE_DIR/venv"
	"$CONSENTRY_CACHE_DIR/venv/bin/pip" install -q --retries 0 --timeout 3 "moto[server]==$MOTO_VERSION"
fi

# 2b. pocketsphinx (the embedded transcription engine) -----------------------------
# Into a venv in the project (.venv-stt/, ignored by git through its own .gitignore), not ~/.cache or --user:
# the recorder finds it beside recorder/ (sources or dist/) whoever runs the gateway and whatever its HOME, a
# clean clone in CI gets it from this step alone, and a venv needs no root and leaves the system Python alone
# (Debian 12's pip refuses --user installs outside a venv: PEP 668). The 5.1.1 wheel bundles the US English model.
POCKETSPHINX_VERSION=5.1.1
STT_VENV=$ROOT/.venv-stt
if ! "$STT_VENV/bin/python3" -c "import importlib.metadata as m, sys; import pocketsphinx; sys.exit(m.version('pocketsphinx') != '$POCKETSPHINX_VERSION')" 2>/dev/null; then
	log "installing pocketsphinx==$POCKETSPHINX_VERSION into $STT_VENV"
	python3 -m venv "$STT_VENV"
	printf '*\n' >"$STT_VENV/.gitignore"
	"$STT_VENV/bin/pip" install -q --retries 0 --timeout 3 "pocketsphinx==$POCKETSPHINX_VERSION"
fi

# 3. mediasoup worker --------------------------------------------------------------
WORKER_BIN=$(scripts/mediasoup-worker/build.sh | tail -1)
export MEDIASOUP_WORKER_BIN="$WORKER_BIN" # also makes `npm ci` skip mediasoup's download

# 4. npm dependencies ----------------------------------------------------------------
LOCK_HASH=$(sha256sum package-lock.json | cut -c1-64)
if [[ "$(cat node_modules/.consentry-lock-hash 2>/dev/null)" != "$LOCK_HASH" ]]; then
	log "installing npm dependencies from package-lock.json"
	# Not `npm ci`: the registry this must work with lacks other platforms' optional binaries
	# (e.g. @biomejs/cli-darwin-*), so no lockfile can list them and `npm ci` refuses it as out of sync.
	# `npm install` with an up-to-date lockfile installs exactly the locked versions.
	# The registry sometimes drops a connection mid-download (EIDLETIMEOUT): try again before giving up.
	for attempt in 1 2 3; do
		npm install --no-audit --no-fund --loglevel=error && break
		[[ $attempt == 3 ]] && { log "npm install failed 3 times"; exit 1; }
		log "npm install failed (attempt $attempt); retrying"
		sleep 5
	done
	echo "$LOCK_HASH" >node_modules/.consentry-lock-hash
fi
# mediasoup looks for its worker here when MEDIASOUP_WORKER_BIN is unset.
DEST=node_modules/mediasoup/worker/out/Release/mediasoup-worker
if ! cmp -s "$WORKER_BIN" "$DEST" 2>/dev/null; then
	mkdir -p "$(dirname "$DEST")"
	cp "$WORKER_BIN" "$DEST.tmp" && mv "$DEST.tmp" "$DEST"
fi

# 5. builds ------------------------------------------------------------------------------
log "building server and client"
# build:server also marks the `consentry` bin executable: tsc writes it 0644, and npx, which linked it into its cache
# on the first run from this folder, never looks at it again, so a fresh build would answer "Permission denied".
npm run -s build:server
npx --no-install vite build --logLevel error

log "ready in $(($(date +%s) - start)) s (worker: $WORKER_BIN)"
