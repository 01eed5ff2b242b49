package cni

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Host rules that a network needs once, not once per pod: the bridge
// plugin's ipMasq and the firewall plugin would add (and remove) iptables
// rules for every pod, ten to twenty iptables runs per pod. A network whose
// conflist says "skiffNetworkRules": true (the built-in one and those of
// `skiff network create`) gets instead, before its first pod, masquerade
// for its subnets leaving the host by another interface than its bridge and
// forward accepts for its subnets on its bridge; they stay, like the bridge.
// Every Setup also makes sure of the loopback guard (loopbackGuard).
//
// Each rule carries a comment that names it; a rule is there when its
// comment is in its table (read once per Setup, beside the plugins: one
// netlink dump with iptables' nf_tables backend, nftrules.go, else one
// iptables-save).

// NetworkRulesKey is the conflist's top-level key asking for network-wide
// host rules.
const NetworkRulesKey = "skiffNetworkRules"

// RulesLock serialises adding host rules on this host, so two Setups never
// add one twice.
var RulesLock = "/run/skiff/host-rules.lock"

// A hostRule is one iptables rule; add is -I (first) or -A.
type hostRule struct {
	table, chain, add, comment string
	spec                       []string
}

func (r hostRule) args(op string) []string {
	a := []string{"-w", "-t", r.table, op, r.chain}
	a = append(a, r.spec...)
	return append(a, "-m", "comment", "--comment", r.comment)
}

// loopbackGuard (filter INPUT, first) drops what arrives for 127.0.0.0/8
// from anywhere but loopback, unless it belongs to a connection the host
// made or a DNAT: portmap turns on route_localnet on a bridge (so that
// ports published on 127.0.0.1 work), which otherwise lets any pod on it
// (CAP_NET_RAW is a default capability) reach services bound to the
// host's loopback (as CVE-2020-8558; kube-proxy's rule).
var loopbackGuard = hostRule{table: "filter", chain: "INPUT", add: "-I", comment: "skiff: pods never reach host loopback",
	spec: []string{"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "!", "-i", "lo",
		"-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"}}

// hostRules returns the network-wide rules of n (none unless its conflist
// asks for them). IPv4 subnets only: iptables.
func (n *Network) hostRules() []hostRule {
	if !n.networkRules {
		return nil
	}
	br := n.Bridge()
	var rs []hostRule
	for _, s := range n.Subnets {
		if !s.Addr().Is4() {
			continue
		}
		tag := fmt.Sprintf("skiff network %s %s: ", n.Name, s)
		rs = append(rs,
			hostRule{"nat", "POSTROUTING", "-A", tag + "masquerade",
				[]string{"-s", s.String(), "!", "-d", "224.0.0.0/4", "!", "-o", br, "-j", "MASQUERADE"}},
			hostRule{"filter", "FORWARD", "-I", tag + "from pods",
				[]string{"-i", br, "-s", s.String(), "-j", "ACCEPT"}},
			hostRule{"filter", "FORWARD", "-I", tag + "replies to pods",
				[]string{"-o", br, "-d", s.String(), "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
		)
	}
	return rs
}

// ensureRules adds the loopback guard and the network-wide rules of nets
// that are missing. Nothing missing (the usual case) costs one read of the
// rules.
func ensureRules(nets []*Network) error {
	want := []hostRule{loopbackGuard}
	for _, n := range nets {
		want = append(want, n.hostRules()...)
	}
	missing, err := missingRules(want)
	if err != nil || len(missing) == 0 {
		return err
	}
	unlock, err := lockRules()
	if err != nil {
		return err
	}
	defer unlock()
	if missing, err = missingRules(missing); err != nil {
		return err
	}
	for _, r := range missing {
		if out, err := exec.Command("iptables", r.args(r.add)...).CombinedOutput(); err != nil {
			return fmt.Errorf("host rule %q: %w: %s", r.comment, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// missingRules returns the rules of want whose comment is not in their
// table.
func missingRules(want []hostRule) ([]hostRule, error) {
	var have map[string]bool // table + " " + comment
	var err error
	if iptablesNFT() {
		have, err = nftComments()
	} else {
		have, err = savedComments()
	}
	if err != nil {
		return nil, err
	}
	var missing []hostRule
	for _, r := range want {
		if !have[r.table+" "+r.comment] {
			missing = append(missing, r)
		}
	}
	return missing, nil
}

// savedComments returns table+" "+comment for every commented rule
// iptables-save prints.
func savedComments() (map[string]bool, error) {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil, fmt.Errorf("host rules: iptables-save: %w", err)
	}
	have := map[string]bool{}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		if t, ok := strings.CutPrefix(l, "*"); ok {
			table = t
		}
		if _, c, ok := strings.Cut(l, ` --comment "`); ok {
			c, _, _ = strings.Cut(c, `"`)
			have[table+" "+c] = true
		} else if _, c, ok := strings.Cut(l, ` --comment `); ok {
			c, _, _ = strings.Cut(c, " ")
			have[table+" "+c] = true
		}
	}
	return have, nil
}

// RemoveNetworkRules deletes n's network-wide host rules (`skiff network
// rm`); rules already gone are no error.
func RemoveNetworkRules(n *Network) error {
	unlock, err := lockRules()
	if err != nil {
		return err
	}
	defer unlock()
	for _, r := range n.hostRules() {
		for exec.Command("iptables", r.args("-C")...).Run() == nil {
			if out, err := exec.Command("iptables", r.args("-D")...).CombinedOutput(); err != nil {
				return fmt.Errorf("remove host rule %q: %w: %s", r.comment, err, strings.TrimSpace(string(out)))
			}
		}
	}
	return nil
}

// lockRules takes RulesLock (waiting for it) and returns its release.
func lockRules() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(RulesLock), 0o755); err != nil {
		return nil, fmt.Errorf("host rules: %w", err)
	}
	f, err := os.OpenFile(RulesLock, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host rules: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("host rules: lock %s: %w", RulesLock, err)
	}
	return func() { f.Close() }, nil
}
