package cni

import (
	"encoding/binary"
	"testing"
)

// nlattr encodes one netlink attribute (native endian, padded to 4).
func nlattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// expr is one rule expression as the kernel dumps it: a list element
// holding the expression's name and data.
func expr(name string, data []byte) []byte {
	return nlattr(nftaListElem|0x8000, cat(nlattr(nftaExprName, []byte(name+"\x00")), nlattr(nftaExprData|0x8000, data)))
}

func TestRuleComments(t *testing.T) {
	info := make([]byte, 256) // struct xt_comment_info
	copy(info, "skiff: pods never reach host loopback")
	comment := expr("match", cat(nlattr(nftaMatchName, []byte("comment\x00")), nlattr(2, []byte{0, 0, 0, 0}), nlattr(nftaMatchInfo, info)))
	other := expr("match", cat(nlattr(nftaMatchName, []byte("conntrack\x00")), nlattr(nftaMatchInfo, []byte("x\x00"))))
	for _, c := range []struct {
		name, want string
		exprs      []byte
	}{
		{"comment match", "skiff: pods never reach host loopback", cat(expr("payload", nil), comment, expr("immediate", nil))},
		{"after another match", "skiff: pods never reach host loopback", cat(other, comment)},
		{"none", "", cat(other, expr("counter", nil))},
		{"empty", "", nil},
		{"truncated", "", comment[:len(comment)-100]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := matchComment(c.exprs); got != c.want {
				t.Errorf("matchComment = %q, want %q", got, c.want)
			}
		})
	}
	for _, c := range []struct {
		name, want string
		udata      []byte
	}{
		{"comment", "masquerade", append([]byte{udataComment, 11}, "masquerade\x00"...)},
		{"after another type", "masquerade", append([]byte{1, 2, 'a', 'b', udataComment, 11}, "masquerade\x00"...)},
		{"no comment", "", []byte{1, 2, 'a', 'b'}},
		{"length past the end", "", []byte{udataComment, 40, 'a'}},
	} {
		t.Run("udata "+c.name, func(t *testing.T) {
			if got := udataString(c.udata, udataComment); got != c.want {
				t.Errorf("udataString = %q, want %q", got, c.want)
			}
		})
	}
}
