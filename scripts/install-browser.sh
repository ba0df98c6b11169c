#!/usr/bin/env bash
# Makes headless Chromium available to treem's browser tests
# (tests/tests/e2e/browser.rs), from Debian's own packages:
#
#   chromium           the browser, driven headless
#   chromium-driver    chromedriver, the WebDriver server the test talks to
#   fonts-dejavu-core  DejaVu Sans: Vietnamese glyphs in the browser's
#                      screenshots, and the font the town embeds in its PDF
#                      evaluation reports (services/town/src/web/pdf.rs)
#   poppler-utils      pdftotext, with which the browser test reads the
#                      downloaded PDF report back
#
# Debian's archive is a registry every treem machine and CI reach; a browser
# build downloaded from anywhere else is not.
#
# Contract:
#   - idempotent: when every program is there it does nothing (no network);
#   - non-interactive: works with CI=true and no stdin (apt-get -y,
#     DEBIAN_FRONTEND=noninteractive);
#   - needs root (or passwordless sudo) only when something is missing;
#   - prints exactly one line on stdout, the absolute path of chromium, so
#     callers can do `TREEM_CHROMIUM="$(scripts/install-browser.sh)"`;
#     progress and errors go to stderr;
#   - exits non-zero when it cannot install: the browser tests then fail
#     loudly (they never skip).
set -euo pipefail

log() { echo "install-browser: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

readonly PACKAGES=(chromium chromium-driver fonts-dejavu-core poppler-utils)
readonly FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

all_present() {
  command -v chromium >/dev/null 2>&1 \
    && command -v chromedriver >/dev/null 2>&1 \
    && command -v pdftotext >/dev/null 2>&1 \
    && [[ -f "$FONT" ]]
}

if ! all_present; then
  if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    die "chromium, chromedriver, pdftotext or DejaVu Sans is missing and this is not root; run as root: apt-get install ${PACKAGES[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script installs Debian's packages ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log "installing ${PACKAGES[*]} with apt-get"
  # Package lists may be missing or stale on a fresh machine.
  "${as_root[@]}" apt-get update -qq </dev/null >&2 || die "apt-get update failed"
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" </dev/null >&2 \
    || die "apt-get install ${PACKAGES[*]} failed"
  all_present || die "installed ${PACKAGES[*]} but chromium, chromedriver, pdftotext or $FONT is still missing"
fi

log "$(chromium --version 2>/dev/null || echo 'chromium (version unknown)'); $(chromedriver --version 2>/dev/null | head -n 1)"
command -v chromium
