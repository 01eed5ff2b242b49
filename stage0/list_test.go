package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
)

var (
	testCreated = time.Date(2026, 12, 7, 13, 0, 0, 0, time.Local)
	testStarted = time.Date(2026, 12, 7, 13, 0, 5, 0, time.Local)
	testPod     = podStatus{
		Status: pod.Status{
			UUID: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", State: pod.PhaseExited, Pid: 4242,
			AppList: []string{"web", "db"}, Names: []string{"example.com/web", ""}, Images: []string{"sha512-aa", "sha512-bb"},
			Apps:    map[string]int{"web": 3},
			Created: testCreated, Started: testStarted,
		},
		Networks: []netStatus{{Network: "default", IPs: []netip.Prefix{netip.MustParsePrefix("172.16.28.2/24"), netip.MustParsePrefix("fd00::2/64")}}},
		Ports:    []cni.PortMapping{{HostPort: 8080, PodPort: 80, Protocol: "tcp"}},
	}
)

// TestListRows: rkt's list: a line per app, the pod's columns on its first
// line only, "-" for a pod without apps, STARTED empty before the pod ran.
func TestListRows(t *testing.T) {
	prepared := podStatus{Status: pod.Status{UUID: "11111111-2222-3333-4444-555555555555", State: pod.PhasePrepared, Created: testCreated}}
	for _, tt := range []struct {
		name string
		sts  []podStatus
		full bool
		want [][]string
	}{
		{"two apps", []podStatus{testPod}, false, [][]string{
			{"0b1c2d3e", "web", "example.com/web", "exited", "2026-12-07 13:00:00", "2026-12-07 13:00:05", "default:ip4=172.16.28.2,default:ip6=fd00::2"},
			{"", "db", "-", "", "", "", ""},
		}},
		{"full", []podStatus{testPod}, true, [][]string{
			{testPod.UUID, "web", "example.com/web", "sha512-aa", "exited", "2026-12-07 13:00:00", "2026-12-07 13:00:05", "default:ip4=172.16.28.2,default:ip6=fd00::2"},
			{"", "db", "-", "sha512-bb", "", "", "", ""},
		}},
		{"no apps, never started", []podStatus{prepared}, false, [][]string{
			{"11111111", "-", "-", "prepared", "2026-12-07 13:00:00", "", ""},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := listRows(tt.sts, tt.full)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("listRows =\n%q\nwant\n%q", got, tt.want)
			}
			for _, r := range got {
				if len(r) != len(listHeader(tt.full)) {
					t.Errorf("row %q has %d columns, the header %d", r, len(r), len(listHeader(tt.full)))
				}
			}
		})
	}
}

// TestStatusOutput: rkt's lines for scripts; tables for people.
func TestStatusOutput(t *testing.T) {
	var lines, tab bytes.Buffer
	statusLines(&lines, testPod)
	wantLines := "state=exited\ncreated=" + testCreated.Format(time.RFC3339) + "\nstarted=" + testStarted.Format(time.RFC3339) +
		"\npid=4242\nnetwork-default=172.16.28.2/24\nnetwork-default=fd00::2/64\npublish=8080:80/tcp\napp-web=3\n"
	if lines.String() != wantLines {
		t.Errorf("lines =\n%s\nwant\n%s", lines.String(), wantLines)
	}
	statusTable(&tab, testPod)
	want := []string{
		"UUID                                  STATE   PID   CREATED              STARTED              NETWORKS                                     PORTS",
		"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0  exited  4242  2026-12-07 13:00:00  2026-12-07 13:00:05  default:ip4=172.16.28.2,default:ip6=fd00::2  8080:80/tcp",
		"",
		"APP  IMAGE NAME       EXIT STATUS",
		"web  example.com/web  3",
		"db   -                -",
	}
	if got := strings.Split(strings.TrimSuffix(tab.String(), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("table =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
