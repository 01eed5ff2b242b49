package cri

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStatsFilters(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	for _, id := range []string{"aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"} {
		if err := s.saveSandbox(&sandboxRecord{ID: id, Handler: "ns", Config: &runtimeapi.PodSandboxConfig{Labels: map[string]string{"pod": id[:1]}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*containerRecord{
		{ID: "c1", SandboxID: "aaaaaaaa-0000-0000-0000-000000000000", App: "one", Config: &runtimeapi.ContainerConfig{Labels: map[string]string{"foo": "bar"}}},
		{ID: "c2", SandboxID: "aaaaaaaa-0000-0000-0000-000000000000", App: "two", Config: &runtimeapi.ContainerConfig{}},
		{ID: "d3", SandboxID: "bbbbbbbb-0000-0000-0000-000000000000", App: "three", Config: &runtimeapi.ContainerConfig{Labels: map[string]string{"foo": "bar"}}},
	} {
		if err := s.saveContainer(c); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(st []*runtimeapi.ContainerStats) (out []string) {
		for _, c := range st {
			out = append(out, c.GetAttributes().GetId())
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		filter *runtimeapi.ContainerStatsFilter
		want   []string
	}{
		{"nil filter", nil, []string{"c1", "c2", "d3"}},
		{"id prefix", &runtimeapi.ContainerStatsFilter{Id: "c"}, []string{"c1", "c2"}},
		{"sandbox", &runtimeapi.ContainerStatsFilter{PodSandboxId: "bbbb"}, []string{"d3"}},
		{"labels", &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"foo": "bar"}}, []string{"c1", "d3"}},
		{"labels, none", &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"foo": "baz"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(r.GetStats()); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Without a running pod there is no group to read: no CPU, no memory.
	cs, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "d3"})
	if err != nil || cs.GetStats().GetAttributes().GetId() != "d3" || cs.GetStats().GetCpu() != nil {
		t.Errorf("ContainerStats(d3) = %v, %v", cs, err)
	}
	ps, err := s.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "aaaa"})
	if err != nil || len(ps.GetStats().GetLinux().GetContainers()) != 2 {
		t.Errorf("PodSandboxStats(aaaa) = %v, %v; want its 2 containers", ps, err)
	}
	lp, err := s.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"pod": "b"}}})
	if err != nil || len(lp.GetStats()) != 1 || lp.GetStats()[0].GetAttributes().GetId()[:1] != "b" {
		t.Errorf("ListPodSandboxStats(pod=b) = %v, %v", lp, err)
	}
	if _, err := s.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "gone"}); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStats of a missing container: %v, want NotFound", err)
	}
	if _, err := s.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "gone"}); status.Code(err) != codes.NotFound {
		t.Errorf("PodSandboxStats of a missing sandbox: %v, want NotFound", err)
	}
}

func TestAppCgroup(t *testing.T) {
	if got, want := appCgroup("/sys/fs/cgroup/skiff/u/payload", "web-1234"), "/sys/fs/cgroup/skiff/u/payload/system.slice/skiff-app-web-1234.service"; got != want {
		t.Errorf("appCgroup = %q, want %q", got, want)
	}
}
