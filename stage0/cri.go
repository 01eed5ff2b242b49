package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/cri"
	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/policy"
	"github.com/skiffpod/skiff/pkg/store"
)

func newCRICmd(g *globals) *cobra.Command {
	var listen, stream string
	cmd := &cobra.Command{
		Use:   "cri [--listen PATH]",
		Short: "Serve the Kubernetes CRI (v1) on a unix socket: pod sandboxes are skiff pods, containers their apps",
		Long: `Serve the Kubernetes Container Runtime Interface for a kubelet or crictl.
A pod sandbox is a skiff app sandbox (--stage1 from the runtime handler: ""
or ns, kvm), a container one of its apps. Its state lives in the data dir:
pods keep running when the server stops, and a new server finds them again.
See docs/kubernetes.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			skiff := []string{self, "--dir=" + g.dir, "--local-config=" + g.localConfig}
			if len(g.insecure) > 0 {
				skiff = append(skiff, "--insecure-options="+strings.Join(g.insecure, ","))
			}
			if g.debug {
				skiff = append(skiff, "--debug")
			}
			if g.authfile != "" {
				skiff = append(skiff, "--authfile="+g.authfile)
			}
			if g.platform != "" {
				skiff = append(skiff, "--platform="+g.platform)
			}
			pol, err := policy.Load(g.localConfig)
			if err != nil {
				return err
			}
			cri.Version = version
			srv := &cri.Server{
				Dir: g.dir, Pods: g.pods(), Log: g.log, Store: g.openStore, Skiff: skiff, StreamAddr: stream,
				Pull: func(ctx context.Context, s *store.Store, ref string, auth *runtimeapi.AuthConfig) (string, error) {
					return criPull(ctx, g, s, pol, ref, auth)
				},
				Admit: func(s *store.Store, id string) ([]string, error) { return g.admit(s, pol, id, id) },
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return srv.Serve(ctx, listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", cri.DefaultListen, "the unix socket to serve on")
	cmd.Flags().StringVar(&stream, "stream-address", "", "host:port of the exec/port-forward streaming server (default 127.0.0.1, a free port)")
	return cmd
}

// criPull fetches a CRI image name (a docker reference) as `skiff fetch
// docker://NAME` would, with the request's credentials if any.
func criPull(ctx context.Context, g *globals, s *store.Store, pol *policy.Policy, name string, auth *runtimeapi.AuthConfig) (string, error) {
	fe, err := g.fetcher(s, pol, "update", nil)
	if err != nil {
		return "", err
	}
	ref, err := g.expandAlias("docker://" + name)
	if err != nil {
		return "", err
	}
	r, err := imageref.Parse(ref)
	if err != nil {
		return "", err
	}
	if ac := credentials(auth); ac != nil {
		reg := fe.OCI.Registry
		fe.OCI.Registry = func(ref imageref.Ref) (oci.Options, error) {
			o, err := reg(ref)
			o.Auth = ac
			return o, err
		}
	}
	release, err := s.Hold()
	if err != nil {
		return "", err
	}
	defer release()
	id, err := fe.FetchOCI(ctx, r)
	if err != nil {
		return "", err
	}
	if _, err := g.admit(s, pol, ref, id); err != nil {
		return "", err
	}
	return id, nil
}

// credentials are the CRI request's, in go-containerregistry's form; nil
// for none.
func credentials(a *runtimeapi.AuthConfig) *authn.AuthConfig {
	if a == nil || a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "" {
		return nil
	}
	return &authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}

var _ = fmt.Sprint
