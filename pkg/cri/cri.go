// Package cri serves the Kubernetes Container Runtime Interface (CRI v1)
// over skiff's pods: a pod sandbox is an app sandbox (docs/app-sandbox.md),
// a container one of its apps. The server keeps no state of its own: what
// the CRI adds to a pod (its config, a container's times and log path) is
// written in the data dir, so a restarted server finds every sandbox and
// container again, and pods never depend on it (docs/kubernetes.md).
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
)

// DefaultListen is the CRI socket when --listen is not given.
const DefaultListen = "/run/skiff/cri.sock"

// Server serves the CRI's RuntimeService and ImageService. Its exported
// fields are its configuration; set them before Serve.
type Server struct {
	Dir  string       // the data dir (--dir)
	Pods *podctl.Pods // the pods of Dir
	Log  *slog.Logger // never nil
	// Store opens the image store.
	Store func() (*store.Store, error)
	// Pull brings image ref (a docker reference without transport, as the
	// kubelet names images) into the store, with auth when not nil, and
	// returns its store ID.
	Pull func(ctx context.Context, s *store.Store, ref string, auth *runtimeapi.AuthConfig) (string, error)
	// Admit checks image id against the run policy and returns its
	// layers, as prepare.App.Layers wants them.
	Admit func(s *store.Store, id string) ([]string, error)
	// Skiff is the command line that runs skiff with the server's global
	// flags (the binary, --dir, --local-config, --insecure-options, ...):
	// each sandbox's long-lived run process is started from it.
	Skiff []string
	// StreamAddr is the host:port of the streaming server (exec, attach,
	// port-forward); "" means 127.0.0.1 on a free port.
	StreamAddr string

	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	// mu serialises container creation (names) and record changes.
	mu     sync.Mutex
	logs   followers
	stream streaming.Server
}

var (
	_ runtimeapi.RuntimeServiceServer = (*Server)(nil)
	_ runtimeapi.ImageServiceServer   = (*Server)(nil)
)

// Serve listens on the unix socket listen and serves until ctx ends.
func (s *Server) Serve(ctx context.Context, listen string) error {
	if err := os.MkdirAll(filepath.Dir(listen), 0o755); err != nil {
		return fmt.Errorf("cri: %w", err)
	}
	// Opening the store makes the data dir, as any skiff command would.
	if _, err := s.Store(); err != nil {
		return err
	}
	for _, d := range []string{s.criDir(), s.sandboxDir(), s.containerDir()} {
		if err := perm.MkdirPrivate(d); err != nil {
			return fmt.Errorf("cri: data dir: %w", err)
		}
	}
	if fi, err := os.Lstat(listen); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return fmt.Errorf("cri: listen %s: exists and is not a socket", listen)
		}
		if c, err := net.Dial("unix", listen); err == nil {
			c.Close()
			return fmt.Errorf("cri: listen %s: a server answers there already", listen)
		}
		os.Remove(listen)
	}
	l, err := net.Listen("unix", listen)
	if err != nil {
		return fmt.Errorf("cri: %w", err)
	}
	defer os.Remove(listen)
	if err := os.Chmod(listen, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("cri: %w", err)
	}
	sl, err := s.startStreaming()
	if err != nil {
		l.Close()
		return err
	}
	defer sl.Close()
	s.logs.init(s)
	s.resumeLogs()

	g := grpc.NewServer(grpc.UnaryInterceptor(s.timed))
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	s.Log.Info("serving the CRI", "listen", listen)
	select {
	case <-ctx.Done():
		g.Stop()
		s.logs.stopAll()
		return nil
	case err := <-errc:
		s.logs.stopAll()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("cri: serve: %w", err)
	}
}

// timed logs each call's method, duration and error at debug level
// (skiff --debug cri): where a kubelet's time goes.
func (s *Server) timed(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.Log.Debug("call", "method", path.Base(info.FullMethod), "took", time.Since(start), "err", err)
	return resp, err
}

// startStreaming starts the exec/attach/port-forward server on
// StreamAddr.
func (s *Server) startStreaming() (net.Listener, error) {
	addr := s.StreamAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cri: streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	srv, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("cri: streaming server: %w", err)
	}
	s.stream = srv
	go http.Serve(l, srv)
	return l, nil
}
