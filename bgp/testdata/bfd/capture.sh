#!/bin/bash
# Capture the BFD Control packets BIRD 2.0.12 and FRR bfdd 8.4.4 exchange with each other
# (single hop IPv4 and IPv6, multihop IPv4), with timer changes (Poll/Final), an FRR
# AdminDown and a BIRD that stops (detection timeout on FRR's side). Writes bird-frr.pcap
# and bird-frr.fields (tshark's own dissection, the test's independent oracle) into DEST.
# Run as root: sudo bgp/testdata/bfd/capture.sh bgp/testdata/bfd
set -eu
OUT=$(mktemp -d)
DEST=${1:-$PWD}
mkdir -p "$OUT"; chmod 755 "$OUT"; cd "$OUT"
A=bfdcapA$$; B=bfdcapB$$
cleanup() { for ns in $A $B; do ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true; done; sleep 0.5; ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap 'cleanup; rm -rf "$OUT"' EXIT
ip netns add $A; ip netns add $B
ip link add va type veth peer name vb
ip link set va netns $A; ip link set vb netns $B
ip -n $A addr add 10.0.0.1/24 dev va; ip -n $B addr add 10.0.0.2/24 dev vb
ip -n $A addr add fd00::1/64 dev va nodad; ip -n $B addr add fd00::2/64 dev vb nodad
ip -n $A addr add 10.1.0.1/32 dev lo; ip -n $B addr add 10.1.0.2/32 dev lo
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set va up; ip -n $B link set vb up
ip -n $A route add 10.1.0.2/32 via 10.0.0.2; ip -n $B route add 10.1.0.1/32 via 10.0.0.1
ip netns exec $A tcpdump -q -n -i va -w $OUT/bfd.pcap 'udp port 3784 or udp port 4784' 2>tcpdump.log &
sleep 1
cat > bird.conf <<EOT
router id 10.0.0.1;
log stderr all;
protocol device {}
protocol bfd bfd1 {
  interface "va" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };
  multihop { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };
  neighbor 10.0.0.2 dev "va";
  neighbor fd00::2 dev "va";
  neighbor 10.1.0.2 local 10.1.0.1 multihop;
}
EOT
ip netns exec $A bird -f -c bird.conf -s $OUT/bird.ctl -P $OUT/bird.pid 2>bird.log &
mkdir -p frr; chown frr:frr frr
cat > frr/bfdd.conf <<EOT
bfd
 peer 10.0.0.1 local-address 10.0.0.2 interface vb
  receive-interval 300
  transmit-interval 300
 !
 peer fd00::1 local-address fd00::2 interface vb
  receive-interval 300
  transmit-interval 300
  detect-multiplier 5
 !
 peer 10.1.0.1 local-address 10.1.0.2 multihop
  receive-interval 300
  transmit-interval 300
  minimum-ttl 60
 !
!
EOT
echo "hostname b" > frr/zebra.conf
ip netns exec $B /usr/lib/frr/zebra -f $OUT/frr/zebra.conf -i $OUT/frr/zebra.pid --vty_socket $OUT/frr -z $OUT/frr/zserv.api -A 127.0.0.1 >frr/zebra.log 2>&1 &
sleep 1
ip netns exec $B /usr/lib/frr/bfdd -f $OUT/frr/bfdd.conf -i $OUT/frr/bfdd.pid --vty_socket $OUT/frr -z $OUT/frr/zserv.api -A 127.0.0.1 >frr/bfdd.log 2>&1 &
sleep 5
vty() { ip netns exec $B vtysh --vty_socket $OUT/frr "$@"; }
vty -c 'show bfd peers brief' > state-up.txt 2>&1 || true
ip netns exec $A birdc -s $OUT/bird.ctl show bfd sessions >> state-up.txt 2>&1 || true
# FRR changes its timers: Poll from FRR, Final from BIRD.
vty -c 'configure terminal' -c 'bfd' -c 'peer 10.0.0.1 local-address 10.0.0.2 interface vb' -c 'transmit-interval 200' -c 'receive-interval 200'
sleep 2
# BIRD changes its timers: Poll from BIRD, Final from FRR.
sed -i 's/interface "va" { min rx interval 300 ms; min tx interval 300 ms/interface "va" { min rx interval 250 ms; min tx interval 250 ms/' bird.conf
ip netns exec $A birdc -s $OUT/bird.ctl configure
sleep 2
# FRR administratively down, then up again.
vty -c 'configure terminal' -c 'bfd' -c 'peer 10.0.0.1 local-address 10.0.0.2 interface vb' -c 'shutdown'
sleep 2
vty -c 'configure terminal' -c 'bfd' -c 'peer 10.0.0.1 local-address 10.0.0.2 interface vb' -c 'no shutdown'
sleep 4
# BIRD stops its BFD protocol.
ip netns exec $A birdc -s $OUT/bird.ctl disable bfd1 || true
sleep 2
sleep 1
kill "$(cat $OUT/frr/bfdd.pid)" 2>/dev/null || true
sleep 1
pkill -f "tcpdump -q -n -i va -w $OUT/bfd.pcap" || true
sleep 1
cp bfd.pcap "$DEST/bird-frr.pcap"
tshark -r bfd.pcap -T fields -E separator=' ' -e frame.number -e ip.src -e ipv6.src -e ip.ttl \
  -e ipv6.hlim -e udp.srcport -e udp.dstport -e bfd.version -e bfd.diag -e bfd.sta -e bfd.flags \
  -e bfd.detect_time_multiplier -e bfd.message_length -e bfd.my_discriminator \
  -e bfd.your_discriminator -e bfd.desired_min_tx_interval -e bfd.required_min_rx_interval \
  -e bfd.required_min_echo_interval 2>/dev/null > "$DEST/bird-frr.fields"
echo "$(wc -l < "$DEST/bird-frr.fields") packets"
