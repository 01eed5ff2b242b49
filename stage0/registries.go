package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/registries"
)

// authFile is the auth file skiff login writes and fetches read first:
// --authfile, else $REGISTRY_AUTH_FILE, else <local-config>/auth.json.
func (g *globals) authFile() string {
	switch {
	case g.authfile != "":
		return g.authfile
	case os.Getenv("REGISTRY_AUTH_FILE") != "":
		return os.Getenv("REGISTRY_AUTH_FILE")
	}
	return filepath.Join(g.localConfig, "auth.json")
}

// authFiles are the auth files searched, in order, for a registry's
// credentials: authFile, then Docker's config.json ($DOCKER_CONFIG, else
// ~/.docker), as podman does.
func (g *globals) authFiles() []string {
	files := []string{g.authFile()}
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	if dir != "" {
		files = append(files, filepath.Join(dir, "config.json"))
	}
	return files
}

// registries loads <local-config>/registries.conf (docs/images.md).
func (g *globals) registries() (*registries.Config, error) {
	return registries.Load(filepath.Join(g.localConfig, registries.FileName))
}

// hostOptions returns how to reach one registry host: the global
// insecure options or its registries.conf entry, and its certs.d CAs.
func (g *globals) hostOptions(ep registries.Endpoint) oci.Options {
	return oci.Options{
		AuthFiles:     g.authFiles(),
		PlainHTTP:     g.insecureOpt("http") || ep.Insecure,
		SkipTLSVerify: g.insecureOpt("tls") || ep.SkipVerify,
		CADir:         filepath.Join(g.localConfig, "certs.d", ep.Host),
		Platform:      g.platform,
	}
}

// registryOptions returns how to pull ref from a registry: its mirrors
// from registries.conf, then the registry itself, each with its own
// insecure settings and certs.d/HOST:PORT; credentials from authFiles.
func (g *globals) registryOptions(ref imageref.Ref) (oci.Options, error) {
	conf, err := g.registries()
	if err != nil {
		return oci.Options{}, err
	}
	eps, err := conf.Endpoints(ref)
	if err != nil {
		return oci.Options{}, fmt.Errorf("fetch %s: %w", ref, err)
	}
	own := eps[len(eps)-1]
	opts := g.hostOptions(own)
	for _, ep := range eps[:len(eps)-1] {
		o := g.hostOptions(ep)
		opts.Mirrors = append(opts.Mirrors, oci.Mirror{Host: ep.Host, Repository: ep.Repository, PlainHTTP: o.PlainHTTP, SkipTLSVerify: o.SkipTLSVerify, CADir: o.CADir})
	}
	return opts, nil
}

// expandAlias applies registries.conf's short-name aliases to a docker://
// reference the user typed; anything else is returned as it is.
func (g *globals) expandAlias(ref string) (string, error) {
	if !strings.HasPrefix(ref, "docker://") {
		return ref, nil
	}
	conf, err := g.registries()
	if err != nil {
		return "", err
	}
	return conf.Expand(ref), nil
}
