# Shared by the .ci scripts (sourced): root or sudo, and installing Debian packages.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt_install PKG...: install the packages given that are missing (none: nothing to do); the caller
# defines say(). An installed package given is never upgraded (--no-upgrade); when a new package needs a
# newer version of one already installed (e.g. podman's libsubid4 brought login and passwd up to its
# own shadow release), say names those upgrades before they happen.
apt_install() {
    local missing=() p upgrades
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # a simulated install lists an upgrade as "Inst NAME [installed version] (new version ...)"
    upgrades="$(apt-get install -s --no-upgrade --no-install-recommends "${missing[@]}" | awk '/^Inst [^ ]+ \[/ { print $2 }' | xargs)"
    [ -z "$upgrades" ] || say "also upgrading installed packages these need: $upgrades"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade --no-install-recommends "${missing[@]}"
}
