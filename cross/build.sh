#!/usr/bin/env bash
# Cross-builds the release `gsmgw` binary for ARM boards with Debian 12's rustc 1.85
# (rustc-web), unpacked into cross/toolchain/ instead of being installed system-wide,
# smoke-tests it under qemu-user and copies it to cross/out/gsmgw-<triple>.
#
#   cross/build.sh [armv7|aarch64|all]      (default: all)
#
# Needs root on Debian 12 (apt-get) and network access to Debian's mirrors and crates.io.
# Environment:
#   CARGO_TARGET_DIR      target dir (default: <workspace>/target-cross, apart from host builds)
#   GSMGW_CROSS_TOOLCHAIN  where the .debs are cached and unpacked (default: cross/toolchain);
#                         point it outside the checkout to share it between clones
#   GSMGW_RUST_DEB_VERSION  Debian version of rustc-web/libstd-rust-web-* to use
#                         (default 1.85.0+dfsg3-1~deb12u3; any other 1.85.x the mirror
#                         offers is picked if that one is gone)
set -euo pipefail

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WS=$(cd "$CROSS_DIR/.." && pwd)
TC=${GSMGW_CROSS_TOOLCHAIN:-$CROSS_DIR/toolchain}
mkdir -p "$TC" && TC=$(cd "$TC" && pwd)
DEBS=$TC/debs
ROOT=$TC/root
OUT=$CROSS_DIR/out
WANT_VERSION=${GSMGW_RUST_DEB_VERSION:-1.85.0+dfsg3-1~deb12u3}
RUST_MINOR=1.85                 # libstd-rust-web-<minor>, and the only minor we accept
DEB_ARCHES=(amd64 armhf arm64)  # amd64: build scripts and proc macros run on the host
EXAMPLE_CONFIG=docs/gsmgw.example.toml

T0=$SECONDS
say()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

case "${1:-all}" in
    armv7)   TARGETS=(armv7) ;;
    aarch64) TARGETS=(aarch64) ;;
    all)     TARGETS=(armv7 aarch64) ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown target '$1' (want armv7, aarch64 or all)" ;;
esac
[[ $# -le 1 ]] || die "too many arguments"

# Per-target facts: Rust triple, GNU tool prefix, qemu binary.
triple_of() { case $1 in armv7) echo armv7-unknown-linux-gnueabihf ;; aarch64) echo aarch64-unknown-linux-gnu ;; esac; }
gnu_of()    { case $1 in armv7) echo arm-linux-gnueabihf ;; aarch64) echo aarch64-linux-gnu ;; esac; }
qemu_of()   { case $1 in armv7) echo qemu-arm-static ;; aarch64) echo qemu-aarch64-static ;; esac; }

[[ $(id -u) -eq 0 ]] || die "run as root (needs apt-get/dpkg)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs Debian 12 (apt-get, dpkg)"
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi
command -v cargo >/dev/null || die "cargo not found (the host cargo from rustup is used; only RUSTC is switched)"

mkdir -p "$DEBS" "$OUT"
# One run at a time per checkout: extraction and apt would race otherwise.
exec 9>"$TC/.lock"
flock 9

# ---------------------------------------------------------------- apt helpers
APT_UPDATED=0
apt_update() {
    [[ $APT_UPDATED -eq 0 ]] || return 0
    APT_UPDATED=1
    say "apt-get update"
    # A single index failing (mirror mid-sync) makes apt-get update exit non-zero although
    # what we need is there; whether it is gets checked right after.
    apt-get update -q >"$TC/apt-update.log" 2>&1 \
        || warn "apt-get update reported errors (see $TC/apt-update.log); carrying on"
}

ensure_foreign_arches() {
    local a added=0
    for a in armhf arm64; do
        if ! dpkg --print-foreign-architectures | grep -x "$a" >/dev/null; then
            say "dpkg --add-architecture $a"
            dpkg --add-architecture "$a"
            added=1
        fi
    done
    if [[ $added -eq 1 ]]; then apt_update; fi
}

# Is pkg:arch offered at exactly this version by the current apt lists?
# apt-cache show exits 0 even for an unknown version, printing nothing: look at the output
# (with grep, not grep -q: its early exit would SIGPIPE apt-cache and fail the pipe).
offered() { apt-cache show "$1:$2=$3" 2>/dev/null | grep '^Package:' >/dev/null; }

# True when every toolchain package is offered at version $1.
all_offered() {
    local v=$1 a
    offered rustc-web amd64 "$v" || return 1
    for a in "${DEB_ARCHES[@]}"; do
        offered libstd-rust-web-dev "$a" "$v" || return 1
        offered "libstd-rust-web-$RUST_MINOR" "$a" "$v" || return 1
    done
    offered libllvm19 amd64 "$(apt-cache policy libllvm19:amd64 | awk '/Candidate:/{print $2}')" || return 1
}

# Prints the version to use: WANT_VERSION if offered, else the newest 1.85.x for which
# rustc-web and all the std packages are offered at the same version.
resolve_version() {
    local v
    if all_offered "$WANT_VERSION"; then echo "$WANT_VERSION"; return 0; fi
    # madison lists newest first.
    while read -r v; do
        [[ $v == "$RUST_MINOR".* ]] || continue
        if all_offered "$v"; then
            warn "rustc-web $WANT_VERSION is not offered; using $v (compiler and std match)"
            echo "$v"; return 0
        fi
    done < <(apt-cache madison rustc-web 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}')
    return 1
}

# ---------------------------------------------------------------- 1. toolchain
# Host packages: cross gcc/binutils/libc for linking and C code, qemu for the smoke test.
HOST_PKGS=(gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu
           binutils-arm-linux-gnueabihf binutils-aarch64-linux-gnu
           libc6-dev-armhf-cross libc6-dev-arm64-cross
           qemu-user-static gcc libc6-dev)
setup_host_packages() {
    local p missing=()
    for p in "${HOST_PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep '^install ok installed$' >/dev/null \
            || missing+=("$p")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    say "apt-get install ${missing[*]}"
    local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
    if ! "${install[@]}" "${missing[@]}" >"$TC/apt-install.log" 2>&1; then
        # Stale or missing lists (fresh machine): refresh once and retry.
        apt_update
        "${install[@]}" "${missing[@]}" >"$TC/apt-install.log" 2>&1 \
            || { tail -20 "$TC/apt-install.log" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
}

setup_rust() {
    local stamp=$ROOT/.extracted
    # Fast path: already unpacked from this requested version.
    if [[ -f $stamp ]] && grep -qxF "requested=$WANT_VERSION" "$stamp"; then
        return 0
    fi
    ensure_foreign_arches
    local v
    if ! v=$(resolve_version); then
        apt_update
        v=$(resolve_version) || die "$(cat <<EOF
no consistent rustc-web $RUST_MINOR toolchain is offered by apt.
  wanted: rustc-web, libllvm19 (amd64) and libstd-rust-web-dev + libstd-rust-web-$RUST_MINOR
          (amd64, armhf, arm64), all at $WANT_VERSION or one common $RUST_MINOR.x version.
  offered: $(apt-cache madison rustc-web 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); printf "%s ", $2}')
  Check /etc/apt/sources (bookworm main + bookworm-security) and 'apt-cache madison rustc-web'.
EOF
)"
    fi
    say "rust toolchain: rustc-web $v"
    local llvm_v
    llvm_v=$(apt-cache policy libllvm19:amd64 | awk '/Candidate:/{print $2}')

    # Download what is not cached yet (apt-get download verifies the hashes).
    local specs=("rustc-web:amd64=$v" "libllvm19:amd64=$llvm_v") a
    for a in "${DEB_ARCHES[@]}"; do
        specs+=("libstd-rust-web-dev:$a=$v" "libstd-rust-web-$RUST_MINOR:$a=$v")
    done
    local spec name arch ver file want=() files=()
    for spec in "${specs[@]}"; do
        name=${spec%%:*}; arch=${spec#*:}; arch=${arch%%=*}; ver=${spec#*=}
        # apt names files name_version_arch.deb with the epoch's ':' written as %3a.
        file=$DEBS/${name}_${ver//:/%3a}_${arch}.deb
        files+=("$file")
        [[ -s $file ]] || want+=("$spec")
    done
    if [[ ${#want[@]} -gt 0 ]]; then
        say "apt-get download ${want[*]}"
        local tmp=$DEBS/partial
        rm -rf "$tmp"; mkdir -p "$tmp"
        (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${want[@]}") >&2 \
            || die "apt-get download failed"
        mv "$tmp"/*.deb "$DEBS"/
        rmdir "$tmp"
    fi
    for file in "${files[@]}"; do
        [[ -s $file ]] || die "expected $file after download"
    done

    # Unpack into a fresh directory and swap it in, so an interrupted run never leaves a
    # half-extracted root that looks complete.
    say "dpkg -x into $ROOT"
    rm -rf "$ROOT.new"; mkdir -p "$ROOT.new"
    for file in "${files[@]}"; do dpkg -x "$file" "$ROOT.new"; done
    # libstd-rust-web-1.85:armhf/arm64 hold only the compiler's own library for ARM hosts
    # (a dependency of the -dev package); a cross build never loads it: drop 140 MB.
    rm -f "$ROOT.new"/usr/lib/{arm-linux-gnueabihf,aarch64-linux-gnu}/librustc_driver-*.so
    # Keep only the .debs of this version set.
    local f keep
    for f in "$DEBS"/*.deb; do
        keep=0
        for file in "${files[@]}"; do [[ $f == "$file" ]] && keep=1; done
        [[ $keep -eq 1 ]] || rm -f "$f"
    done
    printf 'requested=%s\nversion=%s\nlibllvm19=%s\n' "$WANT_VERSION" "$v" "$llvm_v" >"$ROOT.new/.extracted"
    rm -rf "$DEBS/partial"
    rm -rf "$ROOT"; mv "$ROOT.new" "$ROOT"
}

setup_rust
setup_host_packages

RUSTC_BIN=$ROOT/usr/bin/rustc
RUST_LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu   # librustc_driver, libLLVM
[[ -x $RUSTC_BIN ]] || die "$RUSTC_BIN missing; delete $TC/root and rerun"
export RUSTC=$RUSTC_BIN
export LD_LIBRARY_PATH=$RUST_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
RUSTC_VV=$("$RUSTC" -vV) || die "$RUSTC does not run (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
RUSTC_RELEASE=$(awk '/^release:/{print $2}' <<<"$RUSTC_VV")
[[ $RUSTC_RELEASE == "$RUST_MINOR".* ]] || die "unexpected rustc release $RUSTC_RELEASE"
# The root is the sysroot as it stands: rustc looks in <bin>/../lib/rustlib/<triple>/lib,
# which is where libstd-rust-web-dev puts the rlibs. Check rather than trust.
SYSROOT=$("$RUSTC" --print sysroot)
[[ $SYSROOT -ef $ROOT/usr ]] || die "rustc sysroot is $SYSROOT, expected $ROOT/usr"
for t in x86_64-unknown-linux-gnu "${TARGETS[@]}"; do
    [[ $t == x86_64-* ]] || t=$(triple_of "$t")
    compgen -G "$SYSROOT/lib/rustlib/$t/lib/libstd-*.rlib" >/dev/null \
        || die "no std for $t under $SYSROOT/lib/rustlib (delete $ROOT and rerun)"
done
say "using $(head -1 <<<"$RUSTC_VV") (setup took $((SECONDS - T0))s)"

# ---------------------------------------------------------------- 2-4. per target
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WS/target-cross}
cd "$WS"
SUMMARY=()
for tgt in "${TARGETS[@]}"; do
    triple=$(triple_of "$tgt"); gnu=$(gnu_of "$tgt"); qemu=$(qemu_of "$tgt")
    TRIPLE_ENV=$(tr 'a-z-' 'A-Z_' <<<"$triple")   # CARGO_TARGET_<TRIPLE>_LINKER
    triple_us=${triple//-/_}                       # CC_<triple> as the cc crate reads it
    t1=$SECONDS
    say "cargo build --release --locked -p gsmgw --target $triple"
    env "CARGO_TARGET_${TRIPLE_ENV}_LINKER=$gnu-gcc" \
        "CC_${triple_us}=$gnu-gcc" \
        "AR_${triple_us}=$gnu-ar" \
        cargo build --release --locked -p gsmgw --target "$triple" \
        || die "cargo build for $triple failed"
    bin=$CARGO_TARGET_DIR/$triple/release/gsmgw
    [[ -x $bin ]] || die "no binary at $bin"
    say "built $triple in $((SECONDS - t1))s"

    # Smoke test under qemu-user (binfmt is not relied on: qemu is called explicitly).
    qrun=("$qemu" -L "/usr/$gnu")
    say "qemu: gsmgw --version"
    version=$("${qrun[@]}" "$bin" --version 2>&1) \
        || { printf '%s\n' "$version" >&2; die "$triple: 'gsmgw --version' failed under qemu"; }
    printf '%s\n' "$version"
    version_line=$(head -1 <<<"$version")
    [[ -n $version_line ]] || die "$triple: 'gsmgw --version' printed nothing"
    [[ -f $EXAMPLE_CONFIG ]] || die "$WS/$EXAMPLE_CONFIG is missing: cannot run 'gsmgw config check'"
    say "qemu: gsmgw config check $EXAMPLE_CONFIG"
    "${qrun[@]}" "$bin" config check "$EXAMPLE_CONFIG" \
        || die "$triple: 'gsmgw config check $EXAMPLE_CONFIG' failed under qemu"

    dest=$OUT/gsmgw-$triple
    cp -f "$bin" "$dest"
    bytes=$(stat -c %s "$dest")
    mib=$(awk -v b="$bytes" 'BEGIN{printf "%.2f", b/1048576}')
    glibc=$("$gnu-objdump" -T "$dest" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1 || true)
    say "$dest: $bytes bytes ($mib MiB), needs ${glibc:-no GLIBC symbols}"
    SUMMARY+=("$(printf '%-32s %10s bytes %7s MiB  %-11s %s' "$triple" "$bytes" "$mib" "${glibc:-?}" "$version_line")")
done

echo
echo "cross build summary ($((SECONDS - T0))s total; binaries in $OUT):"
printf '  %s\n' "${SUMMARY[@]}"
