#!/usr/bin/env bash
# The Cortex-M cross toolchain and QEMU that `emberflow compile`'s cross builds, `check`'s exact
# sizes and the QEMU tests use: Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and
# qemu-system-arm. Idempotent: nothing to do when they are there. Installs them with apt-get
# (as root, or through sudo without a password prompt), never asking a question; exits 1 with
# what to do when they are missing and cannot be installed here.
set -euo pipefail

PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
NEWLIB=/usr/lib/arm-none-eabi/newlib
SKIP_HINT="or run with MCU_TOOLS=skip (make test MCU_TOOLS=skip) and the cross-build and QEMU tests skip"

have_tools() {
  command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 && [ -d "$NEWLIB" ]
}

fail() {
  echo "mcu-tools: $*" >&2
  exit 1
}

if have_tools; then
  exit 0
fi
command -v apt-get >/dev/null 2>&1 ||
  fail "arm-none-eabi-gcc, its newlib or qemu-system-arm is missing and this system has no apt-get: install ${PACKAGES[*]} (or your system's packages of them), $SKIP_HINT"

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    fail "installing ${PACKAGES[*]} needs root: run 'sudo make mcu-tools', $SKIP_HINT"
  fi
fi

# no prompts (DEBIAN_FRONTEND, keep existing config files), wait for a dpkg lock another install holds
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
echo "mcu-tools: installing ${PACKAGES[*]} with apt-get"
"${SUDO[@]}" "${APT[@]}" update >/dev/null || fail "apt-get update failed (see above)"
"${SUDO[@]}" "${APT[@]}" install --no-install-recommends "${PACKAGES[@]}" >/dev/null ||
  fail "apt-get install ${PACKAGES[*]} failed (see above)"
have_tools || fail "apt-get installed ${PACKAGES[*]}, but arm-none-eabi-gcc, $NEWLIB or qemu-system-arm is still not found"
echo "mcu-tools: $(arm-none-eabi-gcc --version | head -n 1); $(qemu-system-arm --version | head -n 1)"
