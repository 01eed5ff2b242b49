package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/skiffpod/skiff/pkg/authfile"
	"github.com/skiffpod/skiff/pkg/imageref"
)

// Login checks that reg (HOST[:PORT]) accepts cred, as podman login
// does: the auth handshake (basic, or a bearer token for no repository),
// then GET /v2/ with the credentials. A refusal wraps ErrDenied. A
// registry that lets anyone in accepts any credentials.
func Login(ctx context.Context, reg string, cred authfile.Cred, opts Options) error {
	opts.defaults()
	host := reg
	if host == imageref.DefaultRegistry {
		host = dockerHubHost
	}
	r := &registry{host: host, caDir: opts.CADir, timeout: opts.Timeout}
	auth := authn.FromConfig(authn.AuthConfig{Username: cred.Username, Password: cred.Password})
	tr, err := connect(ctx, host, auth, nil, opts)
	if err != nil {
		return r.loginError(reg, r.explain("connect", err))
	}
	scheme := "https"
	if opts.PlainHTTP {
		scheme = "http"
	}
	u := (&url.URL{Scheme: scheme, Host: host, Path: "/v2/"}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return r.loginError(reg, r.explain("GET "+u, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r.loginError(reg, r.status(u, resp))
	}
	return nil
}

// loginError says a refusal as what it means to someone logging in.
func (r *registry) loginError(reg string, err error) error {
	if errors.Is(err, ErrDenied) {
		return fmt.Errorf("login %s: %w: %s refused the user name or password", reg, ErrDenied, r.host)
	}
	return fmt.Errorf("login %s: %w", reg, err)
}
