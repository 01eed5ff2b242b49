package cni

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Reading the host rules' comments without iptables-save: with iptables'
// nf_tables backend (Debian's default, xtables-nft-multi), a rule added by
// iptables is an nftables rule of family ip, and its comment an xtables
// "comment" match expression (iptables 1.8.9) or the rule's userdata
// (later versions). One netlink dump of the rules reads them in-process,
// where an iptables-save run (a fork, an exec and the whole ruleset
// printed) cost 10–20 ms of every pod's setup on a loaded host. With the
// legacy backend, iptables-save it is.

// nftables netlink constants (linux/netfilter/nf_tables.h, nfnetlink.h).
const (
	nfnlSubsysNFTables  = 10
	nftMsgGetRule       = 7
	nftaRuleTable       = 1
	nftaRuleExpressions = 4
	nftaRuleUserdata    = 7
	nftaListElem        = 1
	nftaExprName        = 1
	nftaExprData        = 2
	nftaMatchName       = 1
	nftaMatchInfo       = 3
	// udataComment is iptables' userdata type of a rule's comment.
	udataComment = 0
)

// iptablesNFT reports whether the iptables in PATH is the nf_tables one.
func iptablesNFT() bool {
	p, err := exec.LookPath("iptables")
	if err != nil {
		return false
	}
	p, err = filepath.EvalSymlinks(p)
	return err == nil && filepath.Base(p) == "xtables-nft-multi"
}

// nftComments returns table+" "+comment for every commented rule of
// family ip, as missingRules wants them.
func nftComments() (map[string]bool, error) {
	// A dump the ruleset changed under (another pod's portmap rules, say)
	// is marked interrupted and may miss rules: read again; if it keeps
	// changing, iptables-save, which copes with that itself.
	var msgs [][]byte
	var err error
	for range 5 {
		req := nl.NewNetlinkRequest(nfnlSubsysNFTables<<8|nftMsgGetRule, unix.NLM_F_DUMP)
		req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.NFPROTO_IPV4, Version: nl.NFNETLINK_V0})
		if msgs, err = req.Execute(unix.NETLINK_NETFILTER, 0); !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if errors.Is(err, nl.ErrDumpInterrupted) {
		return savedComments()
	}
	if err != nil {
		return nil, fmt.Errorf("host rules: read nftables rules: %w", err)
	}
	have := map[string]bool{}
	for _, m := range msgs {
		if len(m) < nl.SizeofNfgenmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofNfgenmsg:])
		if err != nil {
			return nil, fmt.Errorf("host rules: read nftables rules: %w", err)
		}
		var table, comment string
		for _, a := range attrs {
			switch attrType(a) {
			case nftaRuleTable:
				table = cstring(a.Value)
			case nftaRuleUserdata:
				comment = cmp.Or(comment, udataString(a.Value, udataComment))
			case nftaRuleExpressions:
				comment = cmp.Or(comment, matchComment(a.Value))
			}
		}
		if comment != "" {
			have[table+" "+comment] = true
		}
	}
	return have, nil
}

// udataString returns the string of type typ in nftables rule userdata
// (type, length, value records; strings NUL-terminated).
func udataString(b []byte, typ byte) string {
	for len(b) >= 2 {
		t, n := b[0], int(b[1])
		if len(b) < 2+n {
			return ""
		}
		if t == typ {
			return string(bytes.TrimRight(b[2:2+n], "\x00"))
		}
		b = b[2+n:]
	}
	return ""
}

// matchComment returns the comment of the first xtables "comment" match
// among a rule's expressions (struct xt_comment_info: the string,
// NUL-padded).
func matchComment(b []byte) string {
	elems, err := nl.ParseRouteAttr(b)
	if err != nil {
		return ""
	}
	for _, e := range elems {
		if attrType(e) != nftaListElem {
			continue
		}
		expr := attrMap(e.Value)
		if cstring(expr[nftaExprName]) != "match" {
			continue
		}
		if m := attrMap(expr[nftaExprData]); cstring(m[nftaMatchName]) == "comment" {
			return cstring(m[nftaMatchInfo])
		}
	}
	return ""
}

// attrMap returns the values of the attributes in b by type (nil if b
// does not parse).
func attrMap(b []byte) map[uint16][]byte {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil
	}
	m := map[uint16][]byte{}
	for _, a := range attrs {
		m[attrType(a)] = a.Value
	}
	return m
}

func attrType(a syscall.NetlinkRouteAttr) uint16 {
	return a.Attr.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
