#!/usr/bin/env bash
# Checks a built ixgw .deb: `dpkg-deb -c` lists every file the package must install,
# /etc/ixgw/ixgw.yaml is a conffile, the maintainer scripts create the user and the directories
# and reload systemd without enabling or starting the service, and the packaged binary accepts
# the packaged configuration.
#
#   packaging/check-deb.sh target/debian/ixgw_0.1.0-1_amd64.deb
set -euo pipefail
deb=${1:?usage: $0 PACKAGE.deb}
[[ -f $deb ]] || { echo "$deb: no such file" >&2; exit 1; }

fail=0
bad() { echo "check-deb: $*" >&2; fail=1; }

# dpkg-deb -c: mode owner/group size date time ./path
mapfile -t listed < <(dpkg-deb -c "$deb" | awk '{ print $1, $6 }')
has() { # has MODE PATH
  local entry
  for entry in "${listed[@]}"; do
    [[ $entry == "$1 $2" ]] && return 0
  done
  bad "$2 (mode $1) is not in the package"
}
has -rwxr-xr-x ./usr/bin/ixgw
has -rw-r--r-- ./usr/lib/systemd/system/ixgw.service
has -rw-r--r-- ./usr/lib/sysusers.d/ixgw.conf
has -rw-r--r-- ./usr/lib/tmpfiles.d/ixgw.conf
has -rw-r----- ./etc/ixgw/ixgw.yaml
has -rw-r--r-- ./usr/share/man/man1/ixgw.1.gz
for page in check run show demo genkey pubkey genpsk peer-config facility facility-verify \
  ca ca-init ca-issue ca-revoke ca-crl usage; do
  has -rw-r--r-- "./usr/share/man/man1/ixgw-$page.1.gz"
done
has -rw-r--r-- ./usr/share/bash-completion/completions/ixgw
has -rw-r--r-- ./usr/share/zsh/vendor-completions/_ixgw
has -rw-r--r-- ./usr/share/fish/vendor_completions.d/ixgw.fish
has -rw-r--r-- ./usr/share/doc/ixgw/README.md
has -rw-r--r-- ./usr/share/doc/ixgw/copyright
has -rw-r--r-- ./usr/share/doc/ixgw/examples/ixgw.yaml
has -rw-r--r-- ./usr/share/doc/ixgw/examples/ipsec-example.yaml
has -rw-r--r-- ./usr/share/doc/ixgw/examples/alerts/ixgw-rules.yaml
has -rw-r--r-- ./usr/share/doc/ixgw/examples/grafana/ixgw-dashboard.json

conffiles=$(dpkg-deb -I "$deb" conffiles 2>/dev/null || true)
grep -qx /etc/ixgw/ixgw.yaml <<<"$conffiles" || bad "conffiles does not list /etc/ixgw/ixgw.yaml: '$conffiles'"
[[ $(dpkg-deb -f "$deb" Package) == ixgw ]] || bad "Package is not ixgw"
grep -q systemd-sysusers <<<"$(dpkg-deb -f "$deb" Depends)" || bad "Depends lacks systemd-sysusers"

postinst=$(dpkg-deb -I "$deb" postinst 2>/dev/null || true)
for want in 'systemd-sysusers .*ixgw.conf' 'systemd-tmpfiles --create ixgw.conf' 'daemon-reload'; do
  grep -q -- "$want" <<<"$postinst" || bad "postinst does not run '$want'"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A fresh install leaves the service disabled and stopped (README "Install"). The postinst
# runs with every command it may call replaced by one that records its arguments and answers
# deb-systemd-helper as on a machine that never had the package (no state: not
# debian-installed; was-enabled defaults to true). Starting happens only under a running
# systemd, so that is checked in the script's text: it may only try-restart on upgrade.
mkdir "$tmp/bin"
for cmd in systemd-sysusers systemd-tmpfiles systemctl deb-systemd-invoke deb-systemd-helper; do
  cat >"$tmp/bin/$cmd" <<STUB
#!/bin/sh
echo "$cmd \$*" >>"$tmp/calls"
case "\$*" in *debian-installed*) exit 1 ;; esac
STUB
  chmod +x "$tmp/bin/$cmd"
done
printf '%s\n' "$postinst" >"$tmp/postinst"
PATH="$tmp/bin:$PATH" sh "$tmp/postinst" configure || bad "postinst configure fails"
grep -q '^systemd-sysusers .*ixgw.conf' "$tmp/calls" || bad "postinst does not call systemd-sysusers"
if grep -E '^(deb-systemd-helper enable|deb-systemd-invoke|systemctl .*(enable|start))' "$tmp/calls"; then
  bad "postinst enables or starts the service on a fresh install"
fi
if grep -E 'deb-systemd-invoke' <<<"$postinst" | grep -qv 'deb-systemd-invoke try-restart'; then
  bad "postinst may start the service"
fi

# The packaged binary, man page and configuration, as installed.
root=$tmp/root
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/ixgw" --version | grep -q '^ixgw ' || bad "ixgw --version fails"
"$root/usr/bin/ixgw" check "$root/etc/ixgw/ixgw.yaml" >/dev/null || bad "ixgw check rejects the packaged configuration"
zcat "$root/usr/share/man/man1/ixgw.1.gz" | grep -q '/etc/ixgw/ixgw.yaml' || bad "ixgw.1 does not name /etc/ixgw/ixgw.yaml"
bash -n "$root/usr/share/bash-completion/completions/ixgw" || bad "the bash completion does not parse"
grep -q '^ExecStart=/usr/bin/ixgw run' "$root/usr/lib/systemd/system/ixgw.service" || bad "the unit does not run /usr/bin/ixgw"

if (( fail )); then
  echo "check-deb: $deb FAILED" >&2
  exit 1
fi
echo "check-deb: $deb ok"
