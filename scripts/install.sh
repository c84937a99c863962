#!/bin/sh
# Install capsa: the binaries, their man pages and shell completions.
#
#   sudo sh scripts/install.sh [PREFIX]      (default /usr/local)
#
# Builds the release binaries first, then generates the man pages and the
# completion scripts from the command line's own definition (`capsa man`,
# `capsa completion`), so they match the binary installed. DESTDIR is
# honoured (packaging); CAPSA_BIN_DIR names binaries already built.
set -eu
PREFIX=${1:-/usr/local}
DEST=${DESTDIR:-}$PREFIX
cd "$(dirname "$0")/.."
if [ -z "${CAPSA_BIN_DIR:-}" ]; then
    cargo build --release -p capsa -p capsa-runtime -p capsa-monitor -p capsa-probe
    CAPSA_BIN_DIR=target/x86_64-unknown-linux-gnu/release
fi
for b in capsa capsa-monitor capsa-runtime capsa-probe; do
    test -x "$CAPSA_BIN_DIR/$b" || { echo "install.sh: $CAPSA_BIN_DIR/$b: not built" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CAPSA_BIN_DIR/capsa" man "$work/man"
install -d "$DEST/bin" "$DEST/share/man/man1" \
    "$DEST/share/bash-completion/completions" \
    "$DEST/share/zsh/site-functions" \
    "$DEST/share/fish/vendor_completions.d"
for b in capsa capsa-monitor capsa-runtime capsa-probe; do
    install -m 0755 "$CAPSA_BIN_DIR/$b" "$DEST/bin/$b"
done
install -m 0644 "$work"/man/*.1 "$DEST/share/man/man1/"
# Written in the scratch directory, then installed (install replaces a
# file; a shell's > would follow a link planted where it writes).
for sh in bash zsh fish; do
    "$CAPSA_BIN_DIR/capsa" completion "$sh" > "$work/capsa.$sh"
done
install -m 0644 "$work/capsa.bash" "$DEST/share/bash-completion/completions/capsa"
install -m 0644 "$work/capsa.zsh" "$DEST/share/zsh/site-functions/_capsa"
install -m 0644 "$work/capsa.fish" "$DEST/share/fish/vendor_completions.d/capsa.fish"
echo "installed capsa in $DEST (man capsa, man capsa-run; completions for bash, zsh, fish)"
