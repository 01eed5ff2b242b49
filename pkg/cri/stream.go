package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/pty"
)

// Exec, Attach and PortForward answer with a URL of the streaming server
// (k8s.io/cri-streaming), which calls back streamRuntime.

func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("exec: %w", err))
	}
	if len(req.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec: %w: no command", errInvalid))
	}
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, grpcError(fmt.Errorf("exec in %s: %w: it is not running", r.ID, errPrecondition))
	}
	req.ContainerId = r.ID
	return s.stream.GetExec(req)
}

func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	r, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("attach: %w", err))
	}
	if st := s.containerState(r); st.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, grpcError(fmt.Errorf("attach to %s: %w: it is not running", r.ID, errPrecondition))
	}
	if !r.Config.GetStdin() {
		return nil, grpcError(fmt.Errorf("attach to %s: %w: it was created without stdin (docs/kubernetes.md)", r.ID, errPrecondition))
	}
	if req.GetTty() || r.Config.GetTty() {
		return nil, status.Error(codes.Unimplemented, "attach with a terminal: not supported by skiff yet (docs/kubernetes.md)")
	}
	req.ContainerId = r.ID
	return s.stream.GetAttach(req)
}

func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	r, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("port forward: %w", err))
	}
	if state, _ := s.sandboxState(r.ID); state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, grpcError(fmt.Errorf("port forward to %s: %w: it is not ready", r.ID, errPrecondition))
	}
	req.PodSandboxId = r.ID
	return s.stream.GetPortForward(req)
}

// streamRuntime is what the streaming server calls.
type streamRuntime struct{ s *Server }

var _ streaming.Runtime = streamRuntime{}

func (rt streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	r, err := rt.s.container(id)
	if err != nil {
		return err
	}
	if tty {
		// skiff enter -t runs the command on a terminal of its own and
		// passes this one's size on (SIGWINCH), which follows resize.
		c := rt.s.enterCmd(ctx, r, cmd, "--tty")
		return exitStatus(pty.Run(c, "/dev/ptmx", in, out, pty.Size{}, sizes(ctx, resize)))
	}
	c := rt.s.enterCmd(ctx, r, cmd)
	c.Stdout, c.Stderr = out, errw
	return exitStatus(runWithStdin(c, in))
}

// runWithStdin runs c with in as its stdin, which ends c's stdin when it
// ends; c's end does not wait for in (a client's stdin may stay open).
func runWithStdin(c *exec.Cmd, in io.Reader) error {
	if in == nil {
		return c.Run()
	}
	w, err := c.StdinPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	go func() {
		io.Copy(w, in)
		w.Close()
	}()
	return c.Wait()
}

// sizes passes the streaming server's terminal sizes on as pty's.
func sizes(ctx context.Context, resize <-chan remotecommandserver.TerminalSize) <-chan pty.Size {
	if resize == nil {
		return nil
	}
	ch := make(chan pty.Size)
	go func() {
		defer close(ch)
		for {
			select {
			case s, ok := <-resize:
				if !ok {
					return
				}
				select {
				case ch <- pty.Size{Rows: s.Height, Cols: s.Width}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// exitStatus turns the exit of a command into what the streaming server
// reports.
func exitStatus(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{code: ee.ExitCode()}
	}
	return err
}

// exitError carries a command's exit status to the streaming server.
type exitError struct{ code int }

func (e exitError) Error() string   { return "command exited " + strconv.Itoa(e.code) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return e.code }

// Attach runs skiff attach (the stage1's enter --attach) for the
// container: the app's output from now on, and in to its stdin.
func (rt streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	r, err := rt.s.container(id)
	if err != nil {
		return err
	}
	args := []string{"attach", "--app=" + r.App}
	if in == nil {
		args = append(args, "--no-stdin")
	}
	c := rt.s.skiffCmd(ctx, append(args, r.SandboxID)...)
	c.Stdout, c.Stderr = out, errw
	if out == nil {
		c.Stdout = io.Discard
	}
	if errw == nil {
		c.Stderr = io.Discard
	}
	return exitStatus(runWithStdin(c, in))
}

// PortForward connects stream to port on the sandbox's loopback: from
// inside the pod's network namespace (the host's, for a host-network pod),
// or through the stage1 for one with pod.FeaturePortForward.
func (rt streamRuntime) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port < 1 || port > 65535 {
		return fmt.Errorf("port forward %s:%d: %w: no such port", id, port, errInvalid)
	}
	// A pod whose apps the host cannot dial (stage1-kvm: they are in the
	// guest): through the stage1.
	if p, err := pod.Load(rt.s.Dir, id); err == nil {
		if s1, err := pod.ReadStage1(p.Path()); err == nil && s1.Supports(pod.FeaturePortForward) {
			in, err := rt.s.Pods.Invocation(p)
			if err == nil {
				err = in.PortForward(ctx, uint16(port), stream)
			}
			return err
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() (err error) {
		conn, err = net.Dial("tcp", addr)
		return err
	}
	var err error
	if r, lerr := rt.s.sandbox(id); lerr == nil && r.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		err = dial()
	} else {
		err = netns.Do(filepath.Join("/run/skiff/netns", id), dial)
	}
	if err != nil {
		return fmt.Errorf("port forward %s:%d: %w", id, port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, conn); done <- struct{}{} }()
	<-done
	<-done
	return nil
}
