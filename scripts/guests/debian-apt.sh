# shellcheck shell=bash
# Debian packages of a foreign release/architecture through a private apt setup.
#
# Sourced by the guest scripts (fetch-debian-riscv64.sh, build-bundled-riscv64.sh).
# It downloads .deb files of, say, trixie/riscv64 on a bookworm/amd64 machine without
# touching the system's apt state: every apt path (sources, lists, cache, status,
# preferences) points into a state folder of the caller, and apt-get runs unprivileged
# downloads as the current user.
#
# Which mirror: the one the machine's own apt sources already name. The sources are
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line "deb [opts] URI
# suite comp..." form) and /etc/apt/sources.list.d/*.sources (deb822 paragraphs with
# Types:/URIs:/Suites:). Every distinct URI of a "deb" entry whose suites are not
# security suites is a candidate, in file order; the first one that serves the wanted
# suite (its `apt-get update` succeeds) wins. TSEMU_DEBIAN_MIRROR="URI..." (tried in order)
# replaces the search. No registry host is written here.
#
# Functions:
#   debian_mirror_candidates [ETC_APT] print candidate mirror URIs, one a line (ETC_APT
#                                      defaults to /etc/apt)
#   debian_apt_prepare STATE ARCH SUITE  pick a mirror and run `apt-get update` into STATE
#   debian_apt STATE CMD ARGS...       run apt-get/apt-cache CMD with STATE's private setup
#   debian_candidate STATE PKG         print "VERSION ARCH" of PKG (name or name=version)
#   debian_download STATE DEST PKG...  download PKG (name or name=version) into DEST unless
#                                      already there; prints the .deb paths
#
# Limits: signatures are checked against the system's debian-archive-keyring (bookworm's
# already holds trixie's keys). Errors end the calling script with a message on stderr.

debian_die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

debian_mirror_candidates() {
  local etc=${1:-/etc/apt} files=() f
  [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
  for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  awk '
    function emit(uri, suites,   n, i, s, ok) {
      n = split(suites, s, /[ \t]+/); ok = 0
      for (i = 1; i <= n; i++) if (s[i] != "" && s[i] !~ /(-security|\/updates)$/) ok = 1
      if (ok && !(uri in seen)) { seen[uri] = 1; print uri }
    }
    function flush(   n, i, u) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
        n = split(uris, u, /[ \t]+/)
        for (i = 1; i <= n; i++) if (u[i] != "") emit(u[i], suites)
      }
      types = uris = suites = enabled = ""
    }
    FNR == 1 { flush() }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      if ($0 ~ /^#/) next
      key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val
      else if (key == "uris") uris = val
      else if (key == "suites") suites = val
      else if (key == "enabled") enabled = tolower(val)
      next
    }
    /^[ \t]*deb[ \t]/ {
      line = $0; sub(/#.*/, "", line); sub(/^[ \t]*deb[ \t]+/, "", line)
      if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
      split(line, w, /[ \t]+/)
      if (w[1] != "" && w[2] != "") emit(w[1], w[2])
    }
    END { flush() }
  ' "${files[@]}"
}

debian_apt() {
  local state=$1 cmd=$2
  shift 2
  "$cmd" -q \
    -o Dir::Etc::SourceList="$state/sources.list" \
    -o Dir::Etc::SourceParts="$state/sources.list.d" \
    -o Dir::Etc::Preferences="$state/preferences" \
    -o Dir::Etc::PreferencesParts="$state/preferences.d" \
    -o Dir::State::Lists="$state/lists" \
    -o Dir::State::Status="$state/status" \
    -o Dir::Cache="$state/cache" \
    -o APT::Architecture="$(cat "$state/arch")" \
    -o APT::Architectures="$(cat "$state/arch")" \
    -o APT::Sandbox::User="$(id -un)" \
    -o Debug::NoLocking=1 \
    "$@"
}

debian_apt_prepare() {
  local state=$1 arch=$2 suite=$3
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || debian_die "$keyring is missing (apt-get install debian-archive-keyring)"
  command -v apt-get >/dev/null || debian_die "apt-get is not installed"
  mkdir -p "$state/sources.list.d" "$state/preferences.d" "$state/lists/partial" "$state/cache/archives/partial"
  : >"$state/status"
  : >"$state/preferences"
  echo "$arch" >"$state/arch"

  local candidates
  if [ -n "${TSEMU_DEBIAN_MIRROR:-}" ]; then
    candidates=$TSEMU_DEBIAN_MIRROR
  else
    candidates=$(debian_mirror_candidates)
  fi
  [ -n "$candidates" ] || debian_die "no Debian mirror named in /etc/apt/sources.list{,.d/} (set TSEMU_DEBIAN_MIRROR=URI)"

  local uri log="$state/update.log"
  : >"$log"
  for uri in $candidates; do
    echo "deb [arch=$arch signed-by=$keyring] $uri $suite main" >"$state/sources.list"
    echo "${0##*/}: apt-get update: $suite/$arch from $uri" >&2
    if debian_apt "$state" apt-get update >"$log.try" 2>&1 && ! grep -q '^[WE]:' "$log.try"; then
      mv "$log.try" "$log"
      echo "$uri" >"$state/mirror"
      return 0
    fi
    { echo "--- $uri failed:"; cat "$log.try"; } >>"$log"
  done
  rm -f "$log.try"
  debian_die "no mirror served $suite for $arch (tried: $(echo "$candidates" | tr '\n' ' ')); apt said:
$(grep -E '^(W|E|Err):' "$log" | head -10)"
}

debian_candidate() {
  local state=$1 pkg=$2
  debian_apt "$state" apt-cache show --no-all-versions "$pkg" 2>/dev/null |
    awk '/^Version:/ { v = $2 } /^Architecture:/ { a = $2 } /^$/ { exit } END { if (v != "") print v, a }'
}

debian_download() {
  local state=$1 dest=$2
  shift 2
  mkdir -p "$dest"
  local pkg name version arch file
  for pkg in "$@"; do
    name=${pkg%%=*}
    read -r version arch <<<"$(debian_candidate "$state" "$pkg")"
    [ -n "$version" ] || debian_die "package $pkg is not in $(cat "$state/mirror") for $(cat "$state/arch")"
    # apt-get download names files name_version_arch.deb with ':' escaped as %3a.
    file="$dest/${name}_${version//:/%3a}_${arch}.deb"
    if [ ! -s "$file" ]; then
      (cd "$dest" && debian_apt "$state" apt-get download "$name=$version" >&2) ||
        debian_die "apt-get download $name=$version failed"
      [ -s "$file" ] || debian_die "apt-get download did not produce $file"
    fi
    echo "$file"
  done
}
