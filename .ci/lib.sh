# Shared by the .ci scripts (sourced): root or sudo, and installing Debian packages.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt_install PKG...: install the packages given (none: nothing to do); the caller defines say().
apt_install() {
    [ $# -eq 0 ] && return 0
    say "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}
