package cri

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/cglimit"
	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pgroup"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// newID is a container ID: 64 hex digits, as containerd's.
func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// appName is the app name of container id named name: an appc name
// (lower-case letters, digits, dashes) that stays readable in the pod's
// journal and unique in the sandbox.
func appName(name, id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	n := strings.Trim(b.String(), "-")
	if n == "" {
		n = "c"
	}
	return n + "-" + id[:8]
}

// appOf maps a container config onto the app skiff adds to the sandbox.
func appOf(cfg *runtimeapi.ContainerConfig) (prepare.App, error) {
	a := prepare.App{Exec: cfg.GetCommand(), Args: cfg.GetArgs(), WorkDir: cfg.GetWorkingDir(),
		Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce()}
	if len(a.Exec) == 0 && a.Args == nil {
		a.Args = nil
	}
	for _, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.Contains(kv.GetKey(), "=") {
			return a, fmt.Errorf("environment variable %q: %w", kv.GetKey(), errInvalid)
		}
		a.Env = append(a.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	lin := cfg.GetLinux()
	sc := lin.GetSecurityContext()
	switch {
	case sc.GetRunAsUser() != nil:
		a.User = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case sc.GetRunAsUsername() != "":
		a.User = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil {
		if a.User == "" {
			return a, fmt.Errorf("run_as_group without run_as_user or run_as_username: %w", errInvalid)
		}
		a.Group = strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	for _, g := range sc.GetSupplementalGroups() {
		a.SupplementaryGIDs = append(a.SupplementaryGIDs, int(g))
	}
	a.ReadOnly = sc.GetReadonlyRootfs()
	a.NoNewPrivs = sc.GetNoNewPrivs()
	add, drop := sc.GetCapabilities().GetAddCapabilities(), sc.GetCapabilities().GetDropCapabilities()
	isAll := func(c string) bool { return strings.EqualFold(c, "ALL") }
	switch {
	case slices.ContainsFunc(add, isAll):
		// Every capability the host lets skiff hold: a pod cannot hold more.
		a.CapsRetain = appspec.HeldCaps()
	case slices.ContainsFunc(drop, isAll) && len(add) > 0:
		// Kubernetes' usual "drop ALL, add a few": keep just those.
		for _, c := range add {
			a.CapsRetain = append(a.CapsRetain, capName(c))
		}
	case slices.ContainsFunc(drop, isAll):
		a.CapsRemove = appspec.HeldCaps()
	default:
		for _, c := range add {
			a.CapsRetain = append(a.CapsRetain, capName(c))
		}
		for _, c := range drop {
			a.CapsRemove = append(a.CapsRemove, capName(c))
		}
	}
	if len(a.CapsRetain) > 0 && len(a.CapsRemove) > 0 {
		return a, fmt.Errorf("capabilities: both added and dropped: %w (skiff keeps or removes, docs/kubernetes.md)", errInvalid)
	}
	switch sc.GetNamespaceOptions().GetPid() {
	case runtimeapi.NamespaceMode_CONTAINER:
		a.PIDNamespace = true
	case runtimeapi.NamespaceMode_NODE:
		return a, fmt.Errorf("host PID namespace: %w: a skiff pod's PID 1 is its own systemd (docs/kubernetes.md)", errInvalid)
	case runtimeapi.NamespaceMode_TARGET:
		return a, fmt.Errorf("PID namespace of another container: %w (docs/kubernetes.md)", errInvalid)
	}
	if sc.GetPrivileged() {
		// Every capability and no filter (applied by the stage1 from
		// the annotation): what it asks for besides is moot.
		a.Privileged, a.CapsRetain, a.CapsRemove = true, appspec.HeldCaps(), nil
	} else if err := seccompOf(&a, sc); err != nil {
		return a, err
	}
	for _, p := range slices.Concat(sc.GetMaskedPaths(), sc.GetReadonlyPaths()) {
		if !filepath.IsAbs(p) {
			return a, fmt.Errorf("masked or read-only path %q: %w: not absolute", p, errInvalid)
		}
	}
	a.MaskedPaths, a.ReadonlyPaths = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	if m := lin.GetResources().GetMemoryLimitInBytes(); m > 0 {
		a.Memory = strconv.FormatInt(m, 10)
	}
	if q, p := lin.GetResources().GetCpuQuota(), lin.GetResources().GetCpuPeriod(); q > 0 && p > 0 {
		a.CPU = fmt.Sprintf("%dm", q*1000/p)
	}
	for _, m := range cfg.GetMounts() {
		if m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL {
			a.SharedMounts = append(a.SharedMounts, filepath.Clean(m.GetContainerPath()))
		}
	}
	return a, checkMounts(cfg.GetMounts(), a.Privileged)
}

// seccompOf sets a's seccomp filter from sc's profile, or from the
// deprecated profile path when there is none ("" is unconfined, as the CRI
// says).
func seccompOf(a *prepare.App, sc *runtimeapi.LinuxContainerSecurityContext) error {
	p := sc.GetSeccomp()
	if p == nil {
		p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		switch path := sc.GetSeccompProfilePath(); {
		case path == "runtime/default" || path == "docker/default":
			p.ProfileType = runtimeapi.SecurityProfile_RuntimeDefault
		case strings.HasPrefix(path, "localhost/"):
			p.ProfileType, p.LocalhostRef = runtimeapi.SecurityProfile_Localhost, strings.TrimPrefix(path, "localhost")
		case path != "" && path != "unconfined":
			return fmt.Errorf("seccomp profile path %q: %w", path, errInvalid)
		}
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		a.SeccompProfile = pod.SeccompUnconfined
	case runtimeapi.SecurityProfile_Localhost:
		f, err := localProfile(p.GetLocalhostRef(), boundingSet(*a))
		if err != nil {
			return fmt.Errorf("seccomp profile %q: %w: %w", p.GetLocalhostRef(), errInvalid, err)
		}
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		a.SeccompProfile = string(b)
	}
	return nil
}

// maxProfileSize bounds a Localhost seccomp profile (Docker's default
// profile is 20 kB).
const maxProfileSize = 1 << 20

// localProfile reads the seccomp profile file at path, for an app whose
// bounding set is caps, and checks that stage2 can load it.
func localProfile(path string, caps []string) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("not an absolute path")
	}
	b, err := safefile.ReadFile(path, maxProfileSize)
	if err != nil {
		return nil, err
	}
	sc, err := appspec.ParseSeccompProfile(b, caps)
	if err != nil {
		return nil, err
	}
	if _, err := launch.Compile(sc); err != nil {
		return nil, err
	}
	return sc, nil
}

// boundingSet is the bounding set the app a gets (appspec's rules).
func boundingSet(a prepare.App) []string {
	if len(a.CapsRetain) > 0 {
		return a.CapsRetain
	}
	return slices.DeleteFunc(slices.Clone(appspec.DefaultCaps), func(c string) bool { return slices.Contains(a.CapsRemove, c) })
}

// oomScoreFloor is the lowest OOM score adjustment a container can get.
// Lowering a score below a process's current one needs CAP_SYS_RESOURCE,
// which some hosts withhold even from root (the test machines); a pod's
// apps start from the server's score (the sandbox's process is started by
// the server), so without it the server's own score is the floor, as
// containerd's restrict_oom_score_adj does.
func oomScoreFloor() int {
	caps, err := capability.NewPid2(0)
	if err == nil {
		err = caps.Load()
	}
	if err == nil && caps.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE) {
		return -1000
	}
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return -1000 // stage2 clamps again to what it finds
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1000
	}
	return n
}

// clampOOMScore is want within [floor, 1000] (and never below -1000), and
// whether that changed it.
func clampOOMScore(want int64, floor int) (int, bool) {
	n := int(max(min(want, 1000), -1000))
	if n < floor {
		return floor, true
	}
	return n, int64(n) != want
}

// capName is a CRI capability name (with or without CAP_, any case) as
// skiff spells it: CAP_NAME.
func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	id, err := s.createContainer(ctx, req)
	if err != nil {
		return nil, grpcError(fmt.Errorf("create container: %w", err))
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (s *Server) createContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (string, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return "", fmt.Errorf("%w: no metadata name", errInvalid)
	}
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return "", err
	}
	state, p := s.sandboxState(sb.ID)
	if state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", fmt.Errorf("sandbox %s: %w: it is not ready", sb.ID, errPrecondition)
	}
	app, err := appOf(cfg)
	if err != nil {
		return "", err
	}
	if app.Privileged && !sb.Config.GetLinux().GetSecurityContext().GetPrivileged() {
		return "", fmt.Errorf("privileged container: %w: sandbox %s is not privileged", errInvalid, sb.ID)
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		want := r.GetOomScoreAdj()
		n, clamped := clampOOMScore(want, oomScoreFloor())
		if clamped {
			s.Log.Warn("container OOM score clamped: this host does not let skiff lower it (no CAP_SYS_RESOURCE)", "container", cfg.GetMetadata().GetName(), "want", want, "set", n)
		}
		l, err := types.NewLinuxOOMScoreAdj(n)
		if err != nil {
			return "", fmt.Errorf("oom score: %w: %w", errInvalid, err)
		}
		app.OOMScoreAdj = l
	}
	if app.SeccompProfile != "" || app.Privileged || len(app.MaskedPaths)+len(app.ReadonlyPaths) > 0 {
		s1, err := pod.ReadStage1(p.Path())
		if err != nil {
			return "", err
		}
		if !s1.Supports(pod.FeatureAppSecurity) {
			return "", fmt.Errorf("a security context: %w: stage1 %s has no feature %s", errInvalid, s1.Name, pod.FeatureAppSecurity)
		}
	}
	if app.Privileged {
		// In a privileged sandbox (above): the host's devices, as
		// containerd gives, where the stage1 can (not in a VM's guest).
		s1, err := pod.ReadStage1(p.Path())
		if err != nil {
			return "", err
		}
		if s1.Supports(pod.FeatureHostDevices) {
			if app.HostDevices, err = hostDevices("/dev"); err != nil {
				return "", fmt.Errorf("the host's devices: %w", err)
			}
		}
	}
	if len(app.SharedMounts) > 0 {
		s1, err := pod.ReadStage1(p.Path())
		if err != nil {
			return "", err
		}
		if !s1.Supports(pod.FeatureSharedMounts) {
			return "", fmt.Errorf("bidirectional mount propagation: %w: stage1 %s has no feature %s", errInvalid, s1.Name, pod.FeatureSharedMounts)
		}
	}
	if app.PIDNamespace || app.Stdin {
		s1, err := pod.ReadStage1(p.Path())
		if err != nil {
			return "", err
		}
		if app.PIDNamespace && !s1.Supports(pod.FeatureAppPIDNamespace) {
			return "", fmt.Errorf("a container PID namespace: %w: stage1 %s has no feature %s", errInvalid, s1.Name, pod.FeatureAppPIDNamespace)
		}
		// Without the feature the container runs as before, stdin /dev/null;
		// Attach says why it cannot attach.
		app.Stdin = app.Stdin && s1.Supports(pod.FeatureAttach)
	}
	st, err := s.Store()
	if err != nil {
		return "", err
	}
	release, err := st.Hold()
	if err != nil {
		return "", err
	}
	defer release()
	img, err := findImage(st, cfg.GetImage().GetImage())
	if err != nil {
		return "", err
	}
	if app.Layers, err = s.Admit(st, img.ID); err != nil {
		return "", err
	}
	app.Image = img.ID
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containersOf(sb.ID) {
		m := c.Config.GetMetadata()
		if m.GetName() == cfg.GetMetadata().GetName() && m.GetAttempt() == cfg.GetMetadata().GetAttempt() {
			return "", fmt.Errorf("container %q attempt %d in sandbox %s: %w (%s)", m.GetName(), m.GetAttempt(), sb.ID, errExists, c.ID)
		}
	}
	id := newID()
	app.Name = appName(cfg.GetMetadata().GetName(), id)
	r := &containerRecord{ID: id, SandboxID: sb.ID, App: app.Name, ImageID: img.ID, ImageRef: criID(img), CreatedAt: time.Now().UnixNano(), Config: cfg}
	if dir, p := sb.Config.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		r.LogPath = filepath.Join(dir, p)
	}
	if _, err := s.Pods.AppAdd(ctx, st, sb.ID, app, nil); err != nil {
		return "", err
	}
	if err := bindMounts(p, app.Name, cfg.GetMounts(), sb.Handler != "kvm"); err != nil {
		return "", errors.Join(err, s.Pods.AppRm(sb.ID, app.Name))
	}
	st.Touch(img.ID)
	if err := s.saveContainer(r); err != nil {
		return "", errors.Join(err, s.Pods.AppRm(sb.ID, app.Name))
	}
	return id, nil
}

// containersOf returns the records of sandbox id's containers.
func (s *Server) containersOf(id string) []*containerRecord {
	all, _ := ids(s.containerDir())
	var out []*containerRecord
	for _, c := range all {
		r, err := s.loadContainer(c)
		if err == nil && r.SandboxID == id {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("start container: %w", err))
	}
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return nil, grpcError(fmt.Errorf("start container %s: %w: it is %s", r.ID, errPrecondition, st.state))
	}
	if r.LogPath != "" {
		// The file is there from the start, as the kubelet expects.
		err := os.MkdirAll(filepath.Dir(r.LogPath), 0o755)
		if err == nil {
			var f *os.File
			if f, err = os.OpenFile(r.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err == nil {
				f.Close()
			}
		}
		if err != nil {
			return nil, grpcError(fmt.Errorf("start container %s: log: %w", r.ID, err))
		}
	}
	s.mu.Lock()
	r.StartedAt = time.Now().UnixNano()
	err = s.saveContainer(r)
	s.mu.Unlock()
	if err != nil {
		return nil, grpcError(err)
	}
	if err := s.Pods.AppStart(r.SandboxID, r.App); err != nil {
		// An app that fails at once (an unconfined one is quick) fails its
		// unit's start with it, yet it ran: the exit status it recorded
		// says so, unless it is stage2's own. Started, then exited.
		if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_EXITED || st.exitCode == pod.ExitFailure {
			return nil, grpcError(fmt.Errorf("start container %s: %w", r.ID, err))
		}
	}
	s.logs.start(r)
	return &runtimeapi.StartContainerResponse{}, nil
}

func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	r, err := s.container(req.GetContainerId())
	if errors.Is(err, errNoRecord) {
		return &runtimeapi.StopContainerResponse{}, nil // stopped: the CRI's stops are idempotent
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("stop container: %w", err))
	}
	if err := s.stopContainer(r); err != nil {
		return nil, grpcError(fmt.Errorf("stop container %s: %w", r.ID, err))
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// stopContainer stops r if it runs and copies its log to the end.
func (s *Server) stopContainer(r *containerRecord) error {
	if st := s.containerState(r); st.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if err := s.Pods.AppStop(r.SandboxID, r.App); err != nil {
			return err
		}
	}
	s.finish(r)
	return nil
}

// finish copies what is left of r's log once it ended and records when.
func (s *Server) finish(r *containerRecord) {
	s.logs.stop(r.ID)
	if r.StartedAt != 0 {
		s.copyLog(r)
	}
}

func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	r, err := s.container(req.GetContainerId())
	if errors.Is(err, errNoRecord) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("remove container: %w", err))
	}
	if err := s.stopContainer(r); err != nil {
		return nil, grpcError(fmt.Errorf("remove container %s: %w", r.ID, err))
	}
	if state, _ := s.sandboxState(r.SandboxID); state == runtimeapi.PodSandboxState_SANDBOX_READY {
		if err := s.Pods.AppRm(r.SandboxID, r.App); err != nil {
			return nil, grpcError(fmt.Errorf("remove container %s: %w", r.ID, err))
		}
	}
	if err := s.removeContainerRecord(r.ID); err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// cstate is a container's state as the CRI reports it.
type cstate struct {
	state    runtimeapi.ContainerState
	exitCode int32
	finished int64
	reason   string
}

// containerState reads r's state from its pod: exited once the stage1
// recorded its exit status (or its pod ended), running once started.
func (s *Server) containerState(r *containerRecord) cstate {
	created := cstate{state: runtimeapi.ContainerState_CONTAINER_CREATED}
	p, err := pod.Load(s.Dir, r.SandboxID)
	if err != nil {
		if r.StartedAt == 0 {
			return created
		}
		return cstate{state: runtimeapi.ContainerState_CONTAINER_EXITED, exitCode: 255, finished: r.StartedAt, reason: "Unknown"}
	}
	codes, _ := p.AppExitStatuses()
	if code, ok := codes[r.App]; ok && r.StartedAt != 0 {
		st := cstate{state: runtimeapi.ContainerState_CONTAINER_EXITED, exitCode: int32(code), reason: "Completed"}
		if code != 0 {
			st.reason = "Error"
		}
		if _, err := os.Stat(p.File(filepath.Join(pod.AppOOMDir, r.App))); err == nil {
			st.reason = "OOMKilled"
		}
		if fi, err := os.Stat(p.File(filepath.Join(pod.AppStatusDir, r.App))); err == nil {
			st.finished = fi.ModTime().UnixNano()
		}
		return st
	}
	if r.StartedAt == 0 {
		return created
	}
	if ps, err := p.Status(); err == nil && ps.State == pod.PhaseRunning {
		return cstate{state: runtimeapi.ContainerState_CONTAINER_RUNNING}
	}
	return cstate{state: runtimeapi.ContainerState_CONTAINER_EXITED, exitCode: 255, finished: r.StartedAt, reason: "Unknown"}
}

func (s *Server) criContainer(r *containerRecord, st cstate) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id: r.ID, PodSandboxId: r.SandboxID, Metadata: r.Config.GetMetadata(),
		Image: r.Config.GetImage(), ImageRef: r.ImageRef, ImageId: r.ImageRef,
		State: st.state, CreatedAt: r.CreatedAt, Labels: r.Config.GetLabels(), Annotations: r.Config.GetAnnotations(),
	}
}

func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	all, err := ids(s.containerDir())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &runtimeapi.ListContainersResponse{}
	for _, id := range all {
		if f.GetId() != "" && !strings.HasPrefix(id, f.GetId()) {
			continue
		}
		r, err := s.loadContainer(id)
		if err != nil {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(r.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		st := s.containerState(r)
		if f.GetState() != nil && f.GetState().GetState() != st.state {
			continue
		}
		if !labelsMatch(r.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out.Containers = append(out.Containers, s.criContainer(r, st))
	}
	return out, nil
}

func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container status: %w", err))
	}
	st := s.containerState(r)
	if st.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		// Whoever sees it exited reads its whole log next.
		s.logs.complete(r)
	}
	out := &runtimeapi.ContainerStatus{
		Id: r.ID, Metadata: r.Config.GetMetadata(), State: st.state,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: st.finished, ExitCode: st.exitCode,
		Image: r.Config.GetImage(), ImageRef: r.ImageRef, ImageId: r.ImageRef, Reason: st.reason,
		Labels: r.Config.GetLabels(), Annotations: r.Config.GetAnnotations(), LogPath: r.LogPath,
		Mounts: r.Config.GetMounts(),
	}
	if st.state == runtimeapi.ContainerState_CONTAINER_EXITED && st.finished < r.StartedAt {
		out.FinishedAt = r.StartedAt
	}
	return &runtimeapi.ContainerStatusResponse{Status: out}, nil
}

func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("update container resources: %w", err))
	}
	if err := s.updateResources(r, req.GetLinux()); err != nil {
		return nil, grpcError(fmt.Errorf("update container resources: %w", err))
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// updateResources sets res's memory limit, CPU quota and shares on r's
// running app: its own cgroups (stage1-ns makes v1 memory and cpu cgroups
// per added app; on a cgroup v2 host, its unit's group). What it cannot
// apply is an error, and the record is updated only once applied.
func (s *Server) updateResources(r *containerRecord, res *runtimeapi.LinuxContainerResources) error {
	if res == nil {
		return nil
	}
	if res.GetCpusetCpus() != "" || res.GetCpusetMems() != "" || len(res.GetHugepageLimits()) > 0 || len(res.GetUnified()) > 0 {
		return fmt.Errorf("%w: cpuset, hugepage and unified limits are not supported (docs/kubernetes.md)", errInvalid)
	}
	l := cglimit.Limits{Memory: res.GetMemoryLimitInBytes(), CPUQuota: res.GetCpuQuota(), CPUPeriod: res.GetCpuPeriod(), CPUShares: res.GetCpuShares()}
	if l.CPUQuota > 0 && l.CPUPeriod == 0 {
		l.CPUPeriod = 100000 // the kernel's default
	}
	if l != (cglimit.Limits{}) {
		sb, err := s.loadSandbox(r.SandboxID)
		if err != nil {
			return err
		}
		if sb.Handler == "kvm" {
			return s.stage1Resources(r, l)
		}
		pid, err := s.appPid(r)
		if err != nil {
			return err
		}
		own := func(_, path string) bool {
			b := filepath.Base(path)
			return b == r.App || b == podunit.UnitName(r.App)
		}
		if err := cglimit.Apply("/sys/fs/cgroup", pid, own, l); err != nil {
			return fmt.Errorf("%w: %w", errPrecondition, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.loadContainer(r.ID)
	if err != nil {
		return err
	}
	if r.Config.Linux == nil {
		r.Config.Linux = &runtimeapi.LinuxContainerConfig{}
	}
	r.Config.Linux.Resources = res
	return s.saveContainer(r)
}

// stage1Resources sets l on r's running app through its stage1 (enter
// --resources), for a pod whose apps' cgroups the host cannot write
// (stage1-kvm: the guest's systemd owns them).
func (s *Server) stage1Resources(r *containerRecord, l cglimit.Limits) error {
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s: %w: it does not run", r.ID, errPrecondition)
	}
	p, err := pod.Load(s.Dir, r.SandboxID)
	if err != nil {
		return err
	}
	in, err := s.Pods.Invocation(p)
	if err != nil {
		return err
	}
	res := pod.AppResources{MemoryBytes: l.Memory, CPUQuota: l.CPUQuota, CPUPeriod: l.CPUPeriod, CPUShares: l.CPUShares}
	err = in.SetResources(r.App, res, stage1Timeout)
	if errors.Is(err, pod.ErrUnsupported) {
		return fmt.Errorf("%w: %w", errInvalid, err)
	} else if err != nil {
		return fmt.Errorf("%w: %w", errPrecondition, err)
	}
	return nil
}

// appPid is a process of r's running app: the first of its unit's group.
func (s *Server) appPid(r *containerRecord) (int, error) {
	p, err := pod.Load(s.Dir, r.SandboxID)
	if err != nil {
		return 0, err
	}
	if podcg, ok := podCgroup(p); ok {
		b, _ := os.ReadFile(filepath.Join(appCgroup(podcg, r.App), "cgroup.procs"))
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("container %s: %w: it does not run", r.ID, errPrecondition)
}

func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("reopen container log: %w", err))
	}
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, grpcError(fmt.Errorf("reopen container log %s: %w: it is not running", r.ID, errPrecondition))
	}
	// The log file is opened anew for every batch of lines copied: a
	// rotated file is replaced at the next one, and made now.
	if r.LogPath != "" {
		f, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, grpcError(fmt.Errorf("reopen container log %s: %w", r.ID, err))
		}
		f.Close()
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// enterCmd is the skiff enter command that runs argv in container r.
func (s *Server) enterCmd(ctx context.Context, r *containerRecord, argv []string, flags ...string) *exec.Cmd {
	args := append(append([]string{"enter", "--app=" + r.App}, flags...), r.SandboxID, "--")
	return s.skiffCmd(ctx, append(args, argv...)...)
}

// skiffCmd is the command skiff args, with the server's global flags.
func (s *Server) skiffCmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, s.Skiff[0], append(append([]string{}, s.Skiff[1:]...), args...)...)
	// Ended by ctx, skiff and the command it runs in the pod (a child of
	// the stage1's enter, in enter's process group) get SIGTERM, and
	// SIGKILL once killGrace has passed: a stage1 whose command is not on
	// the host (stage1-kvm: in the guest) passes the SIGTERM on and ends
	// the command there (docs/stage1-abi.md, enter), which a SIGKILL to
	// enter could not.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		pgid := c.Process.Pid
		err := syscall.Kill(-pgid, syscall.SIGTERM)
		go func() {
			if !pgroup.Gone(pgid, killGrace) {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}()
		return err
	}
	c.WaitDelay = killGrace + time.Second
	return c
}

// killGrace is how long a cancelled skiff command has between SIGTERM and
// SIGKILL: longer than stage1-kvm's guest waits for a signalled command's
// group to be gone (5 s) before it answers, so that its enter ends with
// the command rather than before.
const killGrace = 10 * time.Second

func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("exec sync: %w", err))
	}
	if len(req.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec sync: %w: no command", errInvalid))
	}
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, grpcError(fmt.Errorf("exec sync in %s: %w: it is not running", r.ID, errPrecondition))
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	var stdout, stderr bytes.Buffer
	c := s.enterCmd(ctx, r, req.GetCmd())
	c.Stdout, c.Stderr = &stdout, &stderr
	err = c.Run()
	if ctx.Err() == context.DeadlineExceeded {
		// Answer once the command is gone from the pod, not just killed.
		if !pgroup.Gone(c.Process.Pid, killGrace+5*time.Second) {
			s.Log.Warn("exec sync: a timed-out command outlives its kill", "container", r.ID)
		}
		return nil, grpcError(fmt.Errorf("exec sync in %s: %w", r.ID, context.DeadlineExceeded))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return nil, grpcError(fmt.Errorf("exec sync in %s: %w", r.ID, err))
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}
