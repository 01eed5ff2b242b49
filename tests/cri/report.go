package cri

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Skip is the phase-1 skip set (--ginkgo.skip) of critest v1.37.0 that fits
// the test machines: containerd 2.4.2 + runc pass every other spec there.
// AppArmor specs skip themselves (no AppArmor on these hosts).
const Skip = "AppArmor|NRI|Image Volume|UserNamespaces|SupplementalGroupsPolicy|support recursive readonly|" +
	"reject a recursive readonly|Image Identifier|metrics operations|public image with digest|MaskedPaths|benchmark"

// Report is the outcome of one critest run.
type Report struct {
	Passed, Failed, Skipped int
	// Failures names each failed spec (or suite node) with the first line
	// of its failure message.
	Failures []string
	// FailedNames names each failed spec or suite node alone, in the order
	// of Failures; PassedNames each passed spec.
	FailedNames, PassedNames []string
}

func (r Report) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", r.Passed, r.Failed, r.Skipped)
}

type junitCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
}

// ParseJUnit reads the report critest writes with --ginkgo.junit-report.
// Specs are the test cases named "[It] ...": passed, skipped (or pending),
// or failed (any other status: failed, panicked, timedout, interrupted,
// aborted). A suite node ([BeforeSuite], ...) that did not pass is a failure.
func ParseJUnit(r io.Reader) (Report, error) {
	var doc struct {
		Suites []struct {
			Cases []junitCase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return Report{}, fmt.Errorf("read junit report: %w", err)
	}
	var rep Report
	cases := 0
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			cases++
			spec := strings.HasPrefix(c.Name, "[It] ")
			switch {
			case c.Status == "passed":
				if spec {
					rep.Passed++
					rep.PassedNames = append(rep.PassedNames, strings.TrimPrefix(c.Name, "[It] "))
				}
			case c.Status == "skipped" || c.Status == "pending":
				if spec {
					rep.Skipped++
				}
			default:
				if spec {
					rep.Failed++
				}
				msg := c.Status
				if c.Failure != nil && c.Failure.Message != "" {
					msg, _, _ = strings.Cut(strings.TrimSpace(c.Failure.Message), "\n")
				}
				name := strings.TrimPrefix(c.Name, "[It] ")
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %s", name, msg))
				rep.FailedNames = append(rep.FailedNames, name)
			}
		}
	}
	if cases == 0 {
		return Report{}, fmt.Errorf("read junit report: no test cases")
	}
	return rep, nil
}
