package pod

import (
	"errors"
	"fmt"
	"strings"
)

// maxHostname is Linux's HOST_NAME_MAX.
const maxHostname = 64

// CheckHostname accepts a hostname of RFC 1123 labels separated by dots:
// each 1 to 63 letters, digits and inner hyphens. Both stage1s hand it to
// the kernel and to systemd as given, so what they would refuse or mangle
// is refused here, before anything is prepared.
func CheckHostname(h string) error {
	if len(h) > maxHostname {
		return fmt.Errorf("longer than %d characters", maxHostname)
	}
	for _, l := range strings.Split(h, ".") {
		switch {
		case l == "":
			return errors.New("empty label")
		case len(l) > 63:
			return fmt.Errorf("label %q longer than 63 characters", l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q not allowed: want letters, digits, '-' and '.'", c)
			}
		}
	}
	return nil
}
