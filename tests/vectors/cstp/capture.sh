#!/bin/bash
# Capture variant of /work/shared/peers/ocserv-pair.sh: same namespaces, certificates and ocserv.conf,
# plus: tcpdump on the client veth, SSLKEYLOGFILE for openconnect (GnuTLS), short DPD so
# DPD/keepalive frames appear, a clean openconnect logoff (SIGINT) so the DISCONNECT frame appears,
# and the private keys are kept. VARIANT=nodtls (as the recipe: --no-dtls) or VARIANT=dtls (client
# offers DTLS, the server has udp-port = 0).
set -euo pipefail
VARIANT=${VARIANT:-nodtls}
OUT=${OUT:?}
D=$(mktemp -d /tmp/lab-oc.XXXXXX)
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5
  ip netns del lab-oc-s 2>/dev/null || true; ip netns del lab-oc-c 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
log() { echo "[$(date +%T)] $*"; }
ip netns add lab-oc-s; ip netns add lab-oc-c
for n in lab-oc-s lab-oc-c; do ip -n $n link set lo up; done
ip link add lab-ocs netns lab-oc-s type veth peer name lab-occ netns lab-oc-c
ip -n lab-oc-s addr add 10.250.40.1/30 dev lab-ocs; ip -n lab-oc-c addr add 10.250.40.2/30 dev lab-occ
ip -n lab-oc-s link set lab-ocs up; ip -n lab-oc-c link set lab-occ up
ip netns exec lab-oc-s sysctl -qw net.ipv4.ip_forward=1
ip -n lab-oc-s addr add 10.252.40.1/32 dev lo
if [[ -n ${NOV6:-} ]]; then for n in lab-oc-s lab-oc-c; do ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done; fi
cd $D
if [[ -n ${CERTS:-} ]]; then cp "$CERTS"/{ca,srv,cli}.{crt,key} .; else
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile ca.key 2>/dev/null
cat > ca.tmpl <<T
cn = "Lab IX CA"
ca
cert_signing_key
crl_signing_key
expiration_days = 30
T
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.crt 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile srv.key 2>/dev/null
cat > srv.tmpl <<T
cn = "10.250.40.1"
ip_address = "10.250.40.1"
tls_www_server
signing_key
encryption_key
expiration_days = 30
T
certtool --generate-certificate --load-privkey srv.key --load-ca-certificate ca.crt --load-ca-privkey ca.key --template srv.tmpl --outfile srv.crt 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile cli.key 2>/dev/null
cat > cli.tmpl <<T
cn = "0110113719"
uid = "0110113719"
tls_www_client
signing_key
expiration_days = 30
T
certtool --generate-certificate --load-privkey cli.key --load-ca-certificate ca.crt --load-ca-privkey ca.key --template cli.tmpl --outfile cli.crt 2>/dev/null
fi
cat > ocserv.conf <<C
auth = "certificate"
tcp-port = 443
socket-file = $D/ocserv.sock
server-cert = $D/srv.crt
server-key = $D/srv.key
ca-cert = $D/ca.crt
cert-user-oid = 0.9.2342.19200300.100.1.1
isolate-workers = false
max-clients = 16
keepalive = ${KA:-32400}
dpd = ${DPD:-90}
try-mtu-discovery = false
tls-priorities = "NORMAL:%SERVER_PRECEDENCE:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"
auth-timeout = 240
cookie-timeout = 300
deny-roaming = false
rekey-time = 172800
rekey-method = ssl
use-occtl = false
pid-file = $D/ocserv.pid
device = ocs
predictable-ips = true
ipv4-network = 10.253.40.0/24
route = 10.252.40.0/24
udp-port = 0
run-as-user = root
run-as-group = root
C
log "tcpdump on lab-occ"
ip netns exec lab-oc-c tcpdump -i lab-occ -s 0 -U --immediate-mode -Z root -w $D/cstp.pcap tcp port 443 > $D/tcpdump.log 2>&1 &
PIDS+=($!); TCPDUMP=$!
log "starting ocserv in lab-oc-s"
ip netns exec lab-oc-s ocserv -f -d ${OCDEBUG:-1} -c $D/ocserv.conf > $D/ocserv.log 2>&1 &
PIDS+=($!)
sleep 1.5
DTLSOPT=--no-dtls; [[ $VARIANT == dtls ]] && DTLSOPT=
log "openconnect in lab-oc-c (certificate login, $VARIANT)"
ip netns exec lab-oc-c env SSLKEYLOGFILE=$D/tls-keys.log openconnect --protocol=anyconnect --certificate $D/cli.crt --sslkey $D/cli.key \
  --cafile $D/ca.crt $DTLSOPT --non-inter -v --dump-http-traffic --interface lab-octun \
  --script /usr/share/vpnc-scripts/vpnc-script https://10.250.40.1/ > $D/openconnect.log 2>&1 &
PIDS+=($!); OC=$!
for i in $(seq 50); do ip -n lab-oc-c addr show lab-octun 2>/dev/null | grep -q 'inet ' && break; sleep 0.2; done
ip -n lab-oc-c addr show lab-octun | grep inet || { tail -20 $D/openconnect.log $D/ocserv.log; exit 1; }
{ ip -n lab-oc-c addr show lab-octun; ip -n lab-oc-c route; } > $D/client-tun.log
ip netns exec lab-oc-c ping -c 2 -i 0.3 -W 1 -p 4978475743535450 -s 24 10.252.40.1 && log OK
log "idle ${IDLE:-0}s"; sleep ${IDLE:-0}
log "SIGINT openconnect (logoff)"; kill -INT $OC; for i in $(seq 30); do kill -0 $OC 2>/dev/null || break; sleep 0.2; done
sleep 2; kill -INT $TCPDUMP; sleep 1
mkdir -p "$OUT"; cp $D/*.conf $D/*.log $D/*.crt $D/*.key $D/*.pcap "$OUT"/; log "copied to $OUT"
exit 0
