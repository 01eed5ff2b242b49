package cri

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Known is a ledger of the critest specs a runtime is known to fail: each
// spec's full name and why it fails. A run is judged against it: a failure
// that is not in the ledger is a regression, a ledger entry whose spec
// passed is fixed and must leave the ledger. The ledger never hides a spec:
// every failure, known or not, is printed with the run.
type Known map[string]string

// ReadKnown reads a ledger: one spec per line, "NAME<TAB># reason"; blank
// lines and lines starting with # are comments. A line without a reason
// is an error: every known failure says why.
func ReadKnown(r io.Reader) (Known, error) {
	k := Known{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, why, ok := strings.Cut(line, "\t#")
		name, why = strings.TrimSpace(name), strings.TrimSpace(why)
		if !ok || name == "" || why == "" {
			return nil, fmt.Errorf("known failures, line %d: want NAME<TAB># reason", n)
		}
		if _, dup := k[name]; dup {
			return nil, fmt.Errorf("known failures, line %d: %q listed twice", n, name)
		}
		k[name] = why
	}
	return k, sc.Err()
}

// Judge returns the failed specs that are not in the ledger (unexpected)
// and the ledger's specs that passed (fixed). A ledger spec that did not
// run (skipped, or outside the run's focus) is neither.
func (k Known) Judge(failed, passed []string) (unexpected, fixed []string) {
	for _, f := range failed {
		if _, ok := k[f]; !ok {
			unexpected = append(unexpected, f)
		}
	}
	for _, p := range passed {
		if _, ok := k[p]; ok {
			fixed = append(fixed, p)
		}
	}
	return unexpected, fixed
}
