#!/usr/bin/env bash
# Builds the mediasoup C++ worker from the npm package's sources against
# Debian 12's own libraries (no GitHub/PyPI/wrapdb downloads), and caches the
# binary outside the repo. See README.md beside this file.
#
# Usage: scripts/mediasoup-worker/build.sh
#   MEDIASOUP_VERSION    mediasoup version (default: "mediasoup" in package.json, else 3.27.1)
#   CONSENTRY_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/consentry)
#   KEEP_BUILD_DIR=1     keep the temporary source/build dir (for debugging)
#
# Progress goes to stderr; the last line on stdout is the absolute path of the
# binary:  BIN=$(scripts/mediasoup-worker/build.sh | tail -1)
set -euo pipefail

log() { printf '[mediasoup-worker] %s\n' "$*" >&2; }
die() { printf '[mediasoup-worker] ERROR: %s\n' "$*" >&2; exit 1; }

# Everything runs inside main(), so bash has parsed the whole script before it
# starts: editing or checking out this file during a build is harmless.
main() {
	SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
	REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)

	# --- version ----------------------------------------------------------------
	if [[ -z "${MEDIASOUP_VERSION:-}" ]]; then
		if [[ -f "$REPO_ROOT/package.json" ]] && command -v node >/dev/null 2>&1; then
			MEDIASOUP_VERSION=$(node -e '
	const pkg = require(process.argv[1]);
	for (const section of ["dependencies", "devDependencies", "optionalDependencies"]) {
	  const v = (pkg[section] || {}).mediasoup;
	  if (typeof v === "string") { console.log(v.replace(/^[\^~]/, "")); break; }
	}' "$REPO_ROOT/package.json") || die "cannot read the mediasoup version from $REPO_ROOT/package.json"
		fi
		MEDIASOUP_VERSION=${MEDIASOUP_VERSION:-3.27.1}
	fi
	[[ "$MEDIASOUP_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] ||
		die "MEDIASOUP_VERSION must be an exact version like 3.27.1 (got '$MEDIASOUP_VERSION')"

	# --- cache key ----------------------------------------------------------------
	# Any change to this script, the patch or a shim gives a new key (= a rebuild);
	# docs (*.md) do not, so reformatting the README costs no 7 min rebuild.
	CONTENT_HASH=$(cd "$SCRIPT_DIR" && find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum | sha256sum | cut -c1-12)
	CACHE_ROOT=${CONSENTRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/consentry}
	OUT_DIR="$CACHE_ROOT/mediasoup-worker-$MEDIASOUP_VERSION-$CONTENT_HASH"
	BIN="$OUT_DIR/mediasoup-worker"

	# The worker exits 41 when started without MEDIASOUP_VERSION (i.e. not by the
	# Node library): a cheap proof that it starts and finds its shared libraries.
	binary_runs() {
		[[ -x "$1" ]] || return 1
		local rc=0
		env -u MEDIASOUP_VERSION "$1" >/dev/null 2>&1 </dev/null || rc=$?
		[[ $rc -eq 41 ]]
	}

	if binary_runs "$BIN"; then
		echo "$BIN"
		exit 0
	fi

	# --- prerequisites ------------------------------------------------------------
	# They are installed by the project's setup script; here we only check, and
	# name the Debian package of whatever is missing.
	missing=()
	need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2 (for '$1')"); }
	need_cmd cc gcc
	need_cmd c++ g++
	need_cmd pkg-config pkg-config
	need_cmd python3 python3
	need_cmd meson meson
	need_cmd ninja ninja-build
	need_cmd flatc flatbuffers-compiler
	need_cmd npm npm
	need_cmd tar tar
	need_cmd sha256sum coreutils
	if ! command -v patch >/dev/null 2>&1 && ! command -v git >/dev/null 2>&1; then
		missing+=("patch (for 'patch')")
	fi
	if command -v pkg-config >/dev/null 2>&1; then
		need_pc() { pkg-config --exists "$1" || missing+=("$2 (for pkg-config module '$1')"); }
		need_pc libuv libuv1-dev
		need_pc openssl libssl-dev
		need_pc libsrtp2 libsrtp2-dev
		need_pc flatbuffers libflatbuffers-dev
		need_pc absl_strings libabsl-dev
		need_pc absl_optional libabsl-dev
		need_pc absl_flat_hash_map libabsl-dev
		need_pc absl_memory libabsl-dev
	fi
	if ((${#missing[@]})); then
		die "missing build prerequisites; install these Debian packages: $(printf '\n    %s' "${missing[@]}")"
	fi
	meson_version=$(meson --version)
	if ! printf '%s\n' 1.0.1 "$meson_version" | sort -V -C; then
		die "meson >= 1.0.1 is required (found $meson_version); install Debian's 'meson' package"
	fi

	PATCH="$SCRIPT_DIR/mediasoup-$MEDIASOUP_VERSION.patch"
	[[ -f "$PATCH" ]] ||
		die "no patch for mediasoup $MEDIASOUP_VERSION ($PATCH); port the previous one, see $SCRIPT_DIR/README.md"

	# --- build (serialised: a parallel run waits, then finds the cached binary) -------------
	mkdir -p "$CACHE_ROOT"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$CACHE_ROOT/.mediasoup-worker.lock"
		if ! flock -n 9; then
			log "another build is running; waiting for it"
			flock 9
		fi
		if binary_runs "$BIN"; then
			echo "$BIN"
			exit 0
		fi
	fi

	START=$SECONDS
	JOBS=$(nproc 2>/dev/null || echo 2)
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/mediasoup-worker-build.XXXXXX")
	cleanup() {
		if [[ "${KEEP_BUILD_DIR:-0}" == 1 ]]; then
			log "kept build dir $WORK"
		else
			rm -rf "$WORK"
		fi
	}
	trap cleanup EXIT

	log "building mediasoup-worker $MEDIASOUP_VERSION (key $CONTENT_HASH) in $WORK with -j$JOBS; takes ~7 min on 2 cores"

	log "fetching the mediasoup@$MEDIASOUP_VERSION npm package"
	(cd "$WORK" && npm pack --silent "mediasoup@$MEDIASOUP_VERSION" >&2)
	tar -xzf "$WORK/mediasoup-$MEDIASOUP_VERSION.tgz" -C "$WORK"
	SRC="$WORK/package"
	WORKER="$SRC/worker"
	[[ -f "$WORKER/meson.build" ]] || die "the npm package has no worker/meson.build"

	# Each shim folder is named after the .wrap file it stands in for; meson
	# --wrap-mode=nodownload uses a folder named after the wrap's `directory =` as
	# if it had been downloaded.
	for shim in "$SCRIPT_DIR"/subprojects/*/; do
		name=$(basename "$shim")
		wrap="$WORKER/subprojects/$name.wrap"
		[[ -f "$wrap" ]] || die "shim '$name' has no $name.wrap in mediasoup $MEDIASOUP_VERSION (renamed upstream?)"
		dir=$(sed -n 's/^[[:space:]]*directory[[:space:]]*=[[:space:]]*//p' "$wrap" | tr -d '[:space:]')
		[[ -n "$dir" ]] || die "$wrap has no 'directory ='"
		rm -rf "$WORKER/subprojects/$dir"
		cp -R "$shim" "$WORKER/subprojects/$dir"
		log "shim $name -> worker/subprojects/$dir"
	done

	log "applying $(basename "$PATCH")"
	if command -v patch >/dev/null 2>&1; then
		patch -d "$SRC" -p1 --forward --batch --no-backup-if-mismatch <"$PATCH" >&2
	else
		# Own repo, so git apply cannot pick up an enclosing one's root.
		git -C "$SRC" init -q
		git -C "$SRC" apply -p1 --verbose "$PATCH" >&2
	fi

	log "meson setup"
	(cd "$WORKER" && meson setup --wrap-mode=nodownload --buildtype=release -Db_ndebug=true build >&2)

	log "generating FlatBuffers headers"
	meson compile -C "$WORKER/build" flatbuffers-generator >&2

	log "compiling mediasoup-worker"
	meson compile -C "$WORKER/build" -j "$JOBS" mediasoup-worker >&2

	built="$WORKER/build/mediasoup-worker"
	binary_runs "$built" || die "the built $built does not start"

	mkdir -p "$OUT_DIR"
	tmp_bin=$(mktemp "$OUT_DIR/.mediasoup-worker.XXXXXX")
	cp "$built" "$tmp_bin"
	chmod 0755 "$tmp_bin"
	mv -f "$tmp_bin" "$BIN"

	log "done in $((SECONDS - START)) s: $BIN"
	echo "$BIN"
}

main "$@"
