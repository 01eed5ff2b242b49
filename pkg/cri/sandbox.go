package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podctl"
)

// sandboxStartWait bounds how long RunPodSandbox waits for a sandbox to
// be ready (a KVM sandbox under TCG boots in seconds).
const sandboxStartWait = 3 * time.Minute

// stopWait is how long a sandbox stop waits for the pod to end.
const stopWait = 60 * time.Second

// HandlerAnnotation is the pod annotation that picks the runtime handler
// when the request names none: a kubelet without an API server cannot
// resolve a RuntimeClass, so its static pods say it this way.
const HandlerAnnotation = "skiff.dev/runtime-handler"

// stage1Of maps a sandbox's runtime handler onto skiff's --stage1: the
// request's handler, else the pod's HandlerAnnotation, else ns.
func stage1Of(handler string, annotations map[string]string) (string, error) {
	what := "runtime handler"
	if a, ok := annotations[HandlerAnnotation]; ok && handler == "" {
		handler, what = a, "annotation "+HandlerAnnotation
	}
	switch handler {
	case "", "ns":
		return "ns", nil
	case "kvm":
		return "kvm", nil
	}
	return "", fmt.Errorf("%s %q: %w (skiff has ns and kvm)", what, handler, errInvalid)
}

// sandboxArgs is the skiff command line (after Skiff) that runs the
// sandbox of cfg as an app sandbox, saving its UUID to uuidFile.
func sandboxArgs(cfg *runtimeapi.PodSandboxConfig, stage1, uuidFile string) ([]string, error) {
	args := []string{"app", "sandbox", "--stage1=" + stage1, "--uuid-file-save=" + uuidFile}
	if cfg.GetHostname() != "" {
		if err := pod.CheckHostname(cfg.GetHostname()); err != nil {
			return nil, fmt.Errorf("hostname %q: %w: %w", cfg.GetHostname(), errInvalid, err)
		}
		args = append(args, "--hostname="+cfg.GetHostname())
	}
	if cfg.GetLinux().GetSecurityContext().GetPrivileged() {
		args = append(args, "--privileged")
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetPid() == runtimeapi.NamespaceMode_NODE {
		return nil, fmt.Errorf("host PID namespace: %w: a skiff pod's PID 1 is its own systemd (docs/kubernetes.md)", errInvalid)
	}
	if ns.GetIpc() == runtimeapi.NamespaceMode_NODE {
		return nil, fmt.Errorf("host IPC namespace: %w: a skiff pod has its own (docs/kubernetes.md)", errInvalid)
	}
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE {
		args = append(args, "--net=host")
		if len(cfg.GetPortMappings()) > 0 {
			// Ports of a pod on the host's network are the host's already.
			return args, nil
		}
	}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue // the kubelet lists container ports without host ports too
		}
		proto := "tcp"
		switch pm.GetProtocol() {
		case runtimeapi.Protocol_UDP:
			proto = "udp"
		case runtimeapi.Protocol_SCTP:
			return nil, fmt.Errorf("port %d/sctp: %w: skiff publishes tcp and udp", pm.GetHostPort(), errInvalid)
		}
		p := fmt.Sprintf("%d:%d/%s", pm.GetHostPort(), pm.GetContainerPort(), proto)
		if ip := pm.GetHostIp(); ip != "" {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("host IP %q: %w", ip, errInvalid)
			}
			p = ip + ":" + p
		}
		args = append(args, "--publish="+p)
	}
	if dns := cfg.GetDnsConfig(); dns != nil && ns.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		for _, s := range dns.GetServers() {
			args = append(args, "--dns="+s)
		}
		for _, s := range dns.GetSearches() {
			args = append(args, "--dns-search="+s)
		}
		for _, s := range dns.GetOptions() {
			args = append(args, "--dns-opt="+s)
		}
	}
	return args, nil
}

// checkHostPorts refuses host ports a host process listens on (ports
// another pod publishes, skiff's own check finds).
func checkHostPorts(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return nil
	}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		addr := net.JoinHostPort(pm.GetHostIp(), strconv.Itoa(int(pm.GetHostPort())))
		var err error
		if pm.GetProtocol() == runtimeapi.Protocol_UDP {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w: %w", addr, cni.ErrPortTaken, err)
		}
	}
	return nil
}

func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := s.runPodSandbox(ctx, req)
	if err != nil {
		return nil, grpcError(fmt.Errorf("run pod sandbox: %w", err))
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (s *Server) runPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (string, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return "", fmt.Errorf("%w: no metadata name", errInvalid)
	}
	stage1, err := stage1Of(req.GetRuntimeHandler(), cfg.GetAnnotations())
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(s.criDir(), "start-"+uuid.NewString())
	uuidFile := tmp + ".uuid"
	args, err := sandboxArgs(cfg, stage1, uuidFile)
	if err != nil {
		return "", err
	}
	if err := checkHostPorts(cfg); err != nil {
		return "", err
	}
	hostNet := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	if err := checkSysctls(cfg.GetLinux().GetSysctls(), stage1, hostNet); err != nil {
		return "", err
	}
	if d := cfg.GetLogDirectory(); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("log directory: %w", err)
		}
	}
	out, err := os.OpenFile(tmp+".log", os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer out.Close()
	defer os.Remove(uuidFile)
	argv := append(append([]string{}, s.Skiff...), args...)
	c := exec.Command(argv[0], argv[1:]...)
	// The sandbox's run process outlives the server: its own session,
	// nothing of the server's stdio.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = out, out
	c.Dir = "/"
	// The stage1's run says READY=1 once the pod is ready (the service
	// manager's protocol, docs/stage1-abi.md): the wait ends then, not at
	// its next look. Never the server's own manager's socket.
	c.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") })
	ready, stopNotify := notifySocket(s.Log)
	defer stopNotify()
	if ready.addr != "" {
		c.Env = append(c.Env, "NOTIFY_SOCKET="+ready.addr)
	}
	s.Log.Debug("start sandbox", "argv", argv)
	if err := c.Start(); err != nil {
		os.Remove(tmp + ".log")
		return "", fmt.Errorf("start skiff: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()

	id, err := s.waitSandbox(ctx, uuidFile, exited, ready.c)
	if err != nil {
		// Whatever was made is taken away: a pod the process left behind.
		if id != "" {
			s.Pods.Stop(id, true, stopWait)
			s.Pods.Remove(id)
		}
		os.Remove(tmp + ".log")
		return "", err
	}
	if sc := cfg.GetLinux().GetSysctls(); len(sc) > 0 {
		err := fmt.Errorf("sysctls: %w", pod.ErrNotExist)
		if p, lerr := pod.Load(s.Dir, id); lerr == nil {
			if pid, perr := p.Pid(); perr == nil {
				err = applySysctls(sc, pid, id)
			} else {
				err = perr
			}
		}
		if err != nil {
			s.Pods.Stop(id, true, stopWait)
			s.Pods.Remove(id)
			os.Remove(tmp + ".log")
			return "", err
		}
	}
	// The run process's output stays beside its record.
	os.Rename(tmp+".log", filepath.Join(s.sandboxDir(), id+".log"))
	r := &sandboxRecord{ID: id, Handler: stage1, CreatedAt: time.Now().UnixNano(), Config: cfg}
	if err := s.saveSandbox(r); err != nil {
		s.Pods.Stop(id, true, stopWait)
		s.Pods.Remove(id)
		return "", err
	}
	return id, nil
}

// notifier is a datagram socket for sd_notify messages: c gets a value
// for each READY=1. addr is "" when there is none.
type notifier struct {
	addr string
	c    chan struct{}
}

// notifySocket listens for sd_notify messages on an abstract socket of
// the host's network namespace (no path to make, none too long), where
// the stage1's run, on the host, sends them. Anyone there could send one
// too: a message only makes the wait look at the pod's state at once.
// Without a socket the wait polls alone.
func notifySocket(log *slog.Logger) (notifier, func()) {
	n := notifier{c: make(chan struct{}, 1)}
	addr := "@skiff-cri-notify-" + uuid.NewString()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		log.Warn("sandbox readiness: no notify socket, polling", "err", err)
		return n, func() {}
	}
	n.addr = addr
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return // closed
			}
			if slices.Contains(strings.Split(string(buf[:k]), "\n"), "READY=1") {
				select {
				case n.c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return n, func() { conn.Close() }
}

// readyPoll is how often waitSandbox looks at the sandbox's state between
// notifications.
const readyPoll = 20 * time.Millisecond

// waitSandbox waits for the sandbox whose UUID the run process writes to
// uuidFile to be ready, or for that process to end; a value from notified
// makes it look at once. It returns the UUID once known, also with an
// error.
func (s *Server) waitSandbox(ctx context.Context, uuidFile string, exited <-chan error, notified <-chan struct{}) (string, error) {
	deadline := time.After(sandboxStartWait)
	id := ""
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return id, s.runFailed(uuidFile, err)
		case <-ctx.Done():
			return id, ctx.Err()
		case <-deadline:
			return id, fmt.Errorf("sandbox not ready after %s", sandboxStartWait)
		case <-tick.C:
		case <-notified:
		}
		if id == "" {
			b, err := os.ReadFile(uuidFile)
			if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
				continue
			}
			id = strings.TrimSpace(string(b))
		}
		p, err := pod.Load(s.Dir, id)
		if err != nil {
			continue
		}
		if st, err := p.Status(); err == nil && st.State == pod.PhaseRunning && st.Ready {
			return id, nil
		}
	}
}

// runFailed makes the error of a sandbox run process that ended: its
// last "skiff:" line, with the CRI's meaning where skiff's says it.
func (s *Server) runFailed(uuidFile string, werr error) error {
	b, _ := os.ReadFile(strings.TrimSuffix(uuidFile, ".uuid") + ".log")
	msg := ""
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if m, ok := strings.CutPrefix(l, "skiff: "); ok {
			msg = m
		}
	}
	if msg == "" {
		msg = fmt.Sprintf("sandbox ended at start (%v)", werr)
	}
	var ee *exec.ExitError
	switch {
	case strings.Contains(msg, cni.ErrPortTaken.Error()):
		return fmt.Errorf("%s: %w", msg, cni.ErrPortTaken)
	case errors.As(werr, &ee) && ee.ExitCode() == 2:
		return fmt.Errorf("%s: %w", msg, errInvalid)
	}
	return errors.New(msg)
}

func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	r, err := s.sandbox(req.GetPodSandboxId())
	if errors.Is(err, errNoRecord) {
		return &runtimeapi.StopPodSandboxResponse{}, nil // stopped: the CRI's stops are idempotent
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("stop pod sandbox: %w", err))
	}
	if err := s.stopSandbox(r.ID); err != nil {
		return nil, grpcError(fmt.Errorf("stop pod sandbox %s: %w", r.ID, err))
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// stopSandbox stops the pod of sandbox id, if it runs; its containers'
// logs are copied to the end.
func (s *Server) stopSandbox(id string) error {
	p, err := pod.Load(s.Dir, id)
	if errors.Is(err, pod.ErrNotExist) {
		return nil // removed behind our back: stopped
	}
	if err != nil {
		return err
	}
	st, err := p.Status()
	if err != nil {
		return err
	}
	if st.State == pod.PhaseRunning {
		if err := s.Pods.Stop(id, false, stopWait); err != nil {
			return err
		}
	}
	for _, c := range s.containersOf(id) {
		s.finish(c)
	}
	return nil
}

func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	r, err := s.sandbox(req.GetPodSandboxId())
	if errors.Is(err, errNoRecord) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil // as containerd: gone is removed
	}
	if err != nil {
		return nil, grpcError(fmt.Errorf("remove pod sandbox: %w", err))
	}
	if err := s.stopSandbox(r.ID); err != nil {
		return nil, grpcError(fmt.Errorf("remove pod sandbox %s: %w", r.ID, err))
	}
	if err := s.Pods.Remove(r.ID); err != nil && !errors.Is(err, pod.ErrNotExist) {
		return nil, grpcError(fmt.Errorf("remove pod sandbox %s: %w", r.ID, err))
	}
	for _, c := range s.containersOf(r.ID) {
		s.logs.stop(c.ID)
		if err := s.removeContainerRecord(c.ID); err != nil {
			return nil, grpcError(err)
		}
	}
	os.Remove(filepath.Join(s.sandboxDir(), r.ID+".log"))
	if err := os.Remove(filepath.Join(s.sandboxDir(), r.ID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, grpcError(err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// sandboxState is the CRI state of sandbox id: ready while its pod runs.
func (s *Server) sandboxState(id string) (runtimeapi.PodSandboxState, *pod.Pod) {
	p, err := pod.Load(s.Dir, id)
	if err != nil {
		return runtimeapi.PodSandboxState_SANDBOX_NOTREADY, nil
	}
	if st, err := p.Status(); err == nil && st.State == pod.PhaseRunning {
		return runtimeapi.PodSandboxState_SANDBOX_READY, p
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY, p
}

func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	r, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("pod sandbox status: %w", err))
	}
	state, p := s.sandboxState(r.ID)
	st := &runtimeapi.PodSandboxStatus{
		Id:             r.ID,
		Metadata:       r.Config.GetMetadata(),
		State:          state,
		CreatedAt:      r.CreatedAt,
		Labels:         r.Config.GetLabels(),
		Annotations:    r.Config.GetAnnotations(),
		RuntimeHandler: handlerName(r.Handler),
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: r.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if p != nil {
		if res, _, err := cni.Cached(p.File(pod.NetDir)); err == nil {
			for _, n := range res {
				for _, ip := range n.IPs {
					if st.Network.Ip == "" {
						st.Network.Ip = ip.Addr().String()
					} else {
						st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip.Addr().String()})
					}
				}
			}
		}
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

// handlerName is the runtime handler a sandbox reports.
func handlerName(stage1 string) string {
	if stage1 == "ns" {
		return ""
	}
	return stage1
}

func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	all, err := ids(s.sandboxDir())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &runtimeapi.ListPodSandboxResponse{}
	for _, id := range all {
		if f.GetId() != "" && !strings.HasPrefix(id, f.GetId()) {
			continue
		}
		r, err := s.loadSandbox(id)
		if err != nil {
			continue // removed meanwhile
		}
		state, _ := s.sandboxState(id)
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !labelsMatch(r.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out.Items = append(out.Items, &runtimeapi.PodSandbox{
			Id: id, Metadata: r.Config.GetMetadata(), State: state, CreatedAt: r.CreatedAt,
			Labels: r.Config.GetLabels(), Annotations: r.Config.GetAnnotations(), RuntimeHandler: handlerName(r.Handler),
		})
	}
	return out, nil
}

// labelsMatch: every selector label is set to its value.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

var _ = podctl.AppCreated
