package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/cgstat"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// podCgroup returns the cgroup v2 directory of p's init (the pod's
// systemd), the group its apps' units are made below: on stage1-ns
// skiff/<uuid>/payload. ok is false when the pod does not run.
func podCgroup(p *pod.Pod) (string, bool) {
	pid, err := p.Pid()
	if err != nil {
		return "", false
	}
	cg, err := cgstat.Of(pid)
	if err != nil {
		return "", false
	}
	root, err := cgstat.Root()
	if err != nil {
		return "", false
	}
	// systemd moves itself into init.scope of the group it was started in.
	return filepath.Join(root, strings.TrimSuffix(cg, "/init.scope")), true
}

// appCgroup is the cgroup of app's unit in the pod whose group is podcg.
func appCgroup(podcg, app string) string {
	return filepath.Join(podcg, "system.slice", podunit.UnitName(app))
}

// usageStats turns the usage of the group at dir into CRI stats; nil, nil
// when there is no such group (a container not running).
func usageStats(dir string, now int64) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	u, err := cgstat.Read(dir)
	if err != nil {
		return nil, nil
	}
	return &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: u.CPUNanos}},
		&runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{Value: u.WorkingSet},
			RssBytes: &runtimeapi.UInt64Value{Value: u.RSS}}
}

// stage1Timeout bounds the stage1's answer to enter --stats or
// --resources: stage1-kvm's guest agent serves one request at a time, and
// an exec may hold it.
const stage1Timeout = 10 * time.Second

// stage1Stats asks the stage1 for app's usage (enter --stats), for a pod
// whose apps' groups the host cannot read (stage1-kvm: in the guest); nil,
// nil when the app does not run or the stage1 does not answer.
func (s *Server) stage1Stats(p *pod.Pod, app string, now int64) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	in, err := s.Pods.Invocation(p)
	if err != nil {
		return nil, nil
	}
	st, err := in.Stats(app, stage1Timeout)
	if err != nil {
		s.Log.Debug("container stats", "pod", p.UUID, "app", app, "err", err)
		return nil, nil
	}
	return &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUNanos}},
		&runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{Value: st.WorkingSetBytes},
			RssBytes: &runtimeapi.UInt64Value{Value: st.RSSBytes}}
}

// containerStats reads r's stats: CPU and memory of its app's unit (read
// by the stage1 when it offers pod.FeatureStats), the writable layer from
// the app's overlay upper dir.
func (s *Server) containerStats(r *containerRecord) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	out := &runtimeapi.ContainerStats{Attributes: &runtimeapi.ContainerAttributes{
		Id: r.ID, Metadata: r.Config.GetMetadata(), Labels: r.Config.GetLabels(), Annotations: r.Config.GetAnnotations(),
	}}
	p, err := pod.Load(s.Dir, r.SandboxID)
	if err != nil {
		return out
	}
	if s1, err := pod.ReadStage1(p.Path()); err == nil && s1.Supports(pod.FeatureStats) {
		if s.containerState(r).state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out.Cpu, out.Memory = s.stage1Stats(p, r.App, now)
		}
	} else if cg, ok := podCgroup(p); ok {
		out.Cpu, out.Memory = usageStats(appCgroup(cg, r.App), now)
	}
	upper := p.File(filepath.Join(pod.OverlayDir, "app-"+r.App, "upper"))
	if b, n, err := cgstat.DiskUsage(upper); err == nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{Timestamp: now,
			FsId:      &runtimeapi.FilesystemIdentifier{Mountpoint: upper},
			UsedBytes: &runtimeapi.UInt64Value{Value: b}, InodesUsed: &runtimeapi.UInt64Value{Value: n}}
	}
	return out
}

func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container stats: %w", err))
	}
	return &runtimeapi.ContainerStatsResponse{Stats: s.containerStats(r)}, nil
}

func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	out := &runtimeapi.ListContainerStatsResponse{}
	for _, r := range s.containersWhere(f.GetId(), f.GetPodSandboxId(), f.GetLabelSelector()) {
		out.Stats = append(out.Stats, s.containerStats(r))
	}
	return out, nil
}

// containersWhere lists the container records matching an ID prefix, a
// sandbox ID prefix and labels ("" and nil match all).
func (s *Server) containersWhere(id, sandbox string, labels map[string]string) []*containerRecord {
	all, _ := ids(s.containerDir())
	var out []*containerRecord
	for _, cid := range all {
		if !strings.HasPrefix(cid, id) {
			continue
		}
		r, err := s.loadContainer(cid)
		if err != nil || !strings.HasPrefix(r.SandboxID, sandbox) || !labelsMatch(r.Config.GetLabels(), labels) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// sandboxStats reads the stats of sandbox r: CPU and memory of the pod's
// group, and each container's.
func (s *Server) sandboxStats(r *sandboxRecord) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	l := &runtimeapi.LinuxPodSandboxStats{}
	if p, err := pod.Load(s.Dir, r.ID); err == nil {
		if cg, ok := podCgroup(p); ok {
			l.Cpu, l.Memory = usageStats(cg, now)
		}
	}
	for _, c := range s.containersWhere("", r.ID, nil) {
		l.Containers = append(l.Containers, s.containerStats(c))
	}
	return &runtimeapi.PodSandboxStats{Attributes: &runtimeapi.PodSandboxAttributes{
		Id: r.ID, Metadata: r.Config.GetMetadata(), Labels: r.Config.GetLabels(), Annotations: r.Config.GetAnnotations(),
	}, Linux: l}
}

func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	r, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("pod sandbox stats: %w", err))
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.sandboxStats(r)}, nil
}

func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	all, err := ids(s.sandboxDir())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &runtimeapi.ListPodSandboxStatsResponse{}
	for _, id := range all {
		if !strings.HasPrefix(id, f.GetId()) {
			continue
		}
		r, err := s.loadSandbox(id)
		if err != nil || !labelsMatch(r.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out.Stats = append(out.Stats, s.sandboxStats(r))
	}
	return out, nil
}
