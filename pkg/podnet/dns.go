package podnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// resolvConf returns the pod's resolv.conf: the --dns flags', or the
// host's (--dns=host, the default).
func (n Request) resolvConf() (string, error) {
	if len(n.DNS) == 0 || slices.Equal(n.DNS, []string{"host"}) {
		if len(n.DNSSearch)+len(n.DNSOpts) == 0 {
			b, err := safefile.ReadFile("/etc/resolv.conf", maxResolvConf)
			if errors.Is(err, os.ErrNotExist) {
				return "", nil
			}
			if err != nil {
				return "", fmt.Errorf("--dns=host: %w", err)
			}
			// systemd-resolved's upstream servers, for a host whose own
			// file names only its stub on loopback.
			up, _ := safefile.ReadFile(resolvedConf, maxResolvConf)
			return podResolvConf(string(b), string(up)), nil
		}
	}
	var b strings.Builder
	for _, s := range n.DNS {
		if s == "host" {
			return "", usagef("--dns=host cannot be combined with other --dns, --dns-search or --dns-opt flags")
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return "", usagef("--dns=%s: not an IP address", s)
		}
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	for _, l := range []struct {
		key, flag string
		vals      []string
	}{{"search", "--dns-search", n.DNSSearch}, {"options", "--dns-opt", n.DNSOpts}} {
		if len(l.vals) == 0 {
			continue
		}
		for _, v := range l.vals {
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return "", usagef("%s=%q: want a word of printable characters", l.flag, v)
			}
		}
		fmt.Fprintf(&b, "%s %s\n", l.key, strings.Join(l.vals, " "))
	}
	return b.String(), nil
}

// podResolvConf turns the host's resolv.conf into the pod's: a nameserver
// on loopback is the host's own and unreachable from the pod's namespace,
// so such lines are left out; when that leaves none, resolved (the upstream
// servers of systemd-resolved, if the host runs it) is used instead.
func podResolvConf(host, resolved string) string {
	var b strings.Builder
	servers, dropped := 0, 0
	for l := range strings.Lines(host) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				dropped++
				continue
			}
			servers++
		}
		b.WriteString(l)
	}
	if dropped > 0 && servers == 0 && resolved != "" {
		return resolved
	}
	return b.String()
}

// hostsEntries returns the /etc/hosts lines of --hosts-entry IP=NAME.
func (n Request) hostsEntries() (string, error) {
	var b strings.Builder
	for _, e := range n.HostsEntries {
		ip, name, _ := strings.Cut(e, "=")
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return "", usagef("--hosts-entry=%s: want IP=NAME", e)
		}
		if err := pod.CheckHostname(name); err != nil {
			return "", usagef("--hosts-entry=%s: %v", e, err)
		}
		fmt.Fprintf(&b, "%s\t%s\n", a, name)
	}
	return b.String(), nil
}
