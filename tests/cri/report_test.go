package cri

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseJUnit(t *testing.T) {
	for _, tc := range []struct {
		name, xml string
		want      Report
		err       string
	}{{
		name: "mixed",
		xml: `<testsuites tests="5"><testsuite name="CRI validation" tests="5">
<testcase name="[BeforeSuite]" status="passed"></testcase>
<testcase name="[It] [sig-node] Runtime info runtime should support returning runtime info [Conformance]" status="passed"></testcase>
<testcase name="[It] [sig-node] Container runtime should support removing container [Conformance]" status="failed"><failure message="Timed out after 60s.&#xA;Expected RUNNING" type="failed">trace</failure></testcase>
<testcase name="[It] [sig-node] AppArmor should fail" status="skipped"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] [sig-node] Streaming runtime should support exec" status="timedout"></testcase>
<testcase name="[It] [sig-node] pending one" status="pending"></testcase>
</testsuite></testsuites>`,
		want: Report{Passed: 1, Failed: 2, Skipped: 2, Failures: []string{
			"[sig-node] Container runtime should support removing container [Conformance]: Timed out after 60s.",
			"[sig-node] Streaming runtime should support exec: timedout",
		}, FailedNames: []string{
			"[sig-node] Container runtime should support removing container [Conformance]",
			"[sig-node] Streaming runtime should support exec",
		}, PassedNames: []string{"[sig-node] Runtime info runtime should support returning runtime info [Conformance]"}},
	}, {
		name: "suite node failed",
		xml: `<testsuites><testsuite>
<testcase name="[BeforeSuite]" status="failed"><failure message="connect: no such file"></failure></testcase>
<testcase name="[It] a" status="skipped"></testcase>
</testsuite></testsuites>`,
		want: Report{Skipped: 1, Failures: []string{"[BeforeSuite]: connect: no such file"}, FailedNames: []string{"[BeforeSuite]"}},
	}, {
		name: "empty",
		xml:  `<testsuites></testsuites>`,
		err:  "no test cases",
	}, {
		name: "not xml",
		xml:  `critest: flag provided but not defined`,
		err:  "read junit report",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJUnit(strings.NewReader(tc.xml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
