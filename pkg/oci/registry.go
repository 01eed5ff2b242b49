package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffpod/skiff/pkg/authfile"
	"github.com/skiffpod/skiff/pkg/imageref"
)

// Defaults of Options.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 3
	DefaultBackoff = 500 * time.Millisecond
)

// dockerHubHost is where docker.io's distribution API lives.
const dockerHubHost = "registry-1.docker.io"

// Mirror is a registry that serves another registry's images.
type Mirror struct {
	Host       string // HOST[:PORT]
	Repository string // the image's repository there
	// PlainHTTP and SkipTLSVerify as in Options, for this mirror only.
	PlainHTTP     bool
	SkipTLSVerify bool
	// CADir as in Options, for this mirror (certs.d/MIRROR-HOST).
	CADir string
}

// registry speaks the distribution v2 API for one repository.
// go-containerregistry does the authentication handshake (anonymous,
// basic, bearer token); skiff issues the GETs itself so that the scheme,
// sizes, media types and verification are its own.
type registry struct {
	ref     imageref.Ref
	host    string
	repo    string
	scheme  string
	caDir   string // named in a certificate error
	client  *http.Client
	timeout time.Duration

	mu   sync.Mutex
	docs map[digest.Digest][]byte // documents already read while resolving the tag
}

// openRegistry opens ref from its mirrors, in order, then from the
// registry itself: the first that resolves it serves the whole image.
func openRegistry(ctx context.Context, ref imageref.Ref, plat ocispec.Platform, opts Options) (*Image, error) {
	var mirrorErrs []string
	for _, m := range opts.Mirrors {
		o := opts
		o.PlainHTTP, o.SkipTLSVerify, o.CADir = m.PlainHTTP, m.SkipTLSVerify, m.CADir
		img, err := openAt(ctx, ref, m.Host, m.Repository, plat, o)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open image %s: %w", ref, err)
		}
		mirrorErrs = append(mirrorErrs, fmt.Sprintf("mirror %s: %v", m.Host, err))
	}
	img, err := openAt(ctx, ref, registryHost(ref), ref.Repository, plat, opts)
	if err != nil && len(mirrorErrs) > 0 {
		return nil, fmt.Errorf("open image %s: %w (tried first: %s)", ref, err, strings.Join(mirrorErrs, "; "))
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	return img, nil
}

// registryHost is the host that serves ref's registry.
func registryHost(ref imageref.Ref) string {
	if ref.Registry == imageref.DefaultRegistry {
		return dockerHubHost
	}
	return ref.Registry
}

func openAt(ctx context.Context, ref imageref.Ref, host, repo string, plat ocispec.Platform, opts Options) (*Image, error) {
	src, err := newRegistry(ctx, ref, host, repo, opts)
	if err != nil {
		return nil, err
	}
	img, err := resolve(ctx, src, ref, plat)
	if err != nil {
		src.close()
		return nil, err
	}
	return img, nil
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
}

// connect does the auth handshake with host for scopes, with the
// credentials the auth files hold for it, over a retrying transport.
func connect(ctx context.Context, host string, auth authn.Authenticator, scopes []string, opts Options) (http.RoundTripper, error) {
	base, err := baseTransport(opts)
	if err != nil {
		return nil, err
	}
	var nameOpts []name.Option
	if opts.PlainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", host, err)
	}
	rt := transport.NewRetry(base,
		transport.WithRetryBackoff(transport.Backoff{Duration: opts.Backoff, Factor: 2, Jitter: 0.1, Steps: opts.Retries + 1}),
		transport.WithRetryStatusCodes(http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	return transport.NewWithContext(ctx, reg, auth, rt, scopes)
}

func newRegistry(ctx context.Context, ref imageref.Ref, host, repo string, opts Options) (*registry, error) {
	return newRegistryFor(ctx, ref, host, repo, opts, "pull")
}

// newRegistryFor asks host for a token with actions ("pull", "pull,push")
// on repo.
func newRegistryFor(ctx context.Context, ref imageref.Ref, host, repo string, opts Options, actions string) (*registry, error) {
	opts.defaults()
	r := &registry{ref: ref, host: host, repo: repo, scheme: "https", caDir: opts.CADir, timeout: opts.Timeout, docs: map[digest.Digest][]byte{}}
	if opts.PlainHTTP {
		r.scheme = "http"
	}
	auth, err := authFor(opts.AuthFiles, authfile.Key(host))
	if err != nil {
		return nil, err
	}
	if opts.Auth != nil {
		auth = authn.FromConfig(*opts.Auth)
	}
	tr, err := connect(ctx, host, auth, []string{"repository:" + repo + ":" + actions}, opts)
	if err != nil {
		return nil, r.explain("connect", err)
	}
	r.client = &http.Client{Transport: tr}
	return r, nil
}

// Transport is the HTTP transport skiff talks to registries with (TLS as
// opts say, CAs from opts.CADir, bounded waits), for other HTTP reads that
// belong to a registry, such as its signatures' lookaside store.
func Transport(opts Options) (http.RoundTripper, error) { return baseTransport(opts) }

// baseTransport is the HTTP transport under the auth handshake: TLS as
// asked, bounded waits for connection and headers, and no plain http
// unless allowed. go-containerregistry would otherwise fall back to http
// for loopback and private addresses on its own; refusing it here keeps
// the credentials and the bytes on TLS.
func baseTransport(opts Options) (http.RoundTripper, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: opts.SkipTLSVerify} //nolint:gosec // the user asked
	if opts.CADir != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		crts, _ := filepath.Glob(filepath.Join(opts.CADir, "*.crt"))
		for _, c := range crts {
			pem, err := os.ReadFile(c)
			if err != nil {
				return nil, fmt.Errorf("read CA %s: %w", c, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("read CA %s: no PEM certificate", c)
			}
		}
		tlsConf.RootCAs = pool
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
	}
	return schemeGuard{inner: t, allowHTTP: opts.PlainHTTP}, nil
}

type schemeGuard struct {
	inner     http.RoundTripper
	allowHTTP bool
}

func (g schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !g.allowHTTP {
		return nil, fmt.Errorf("%s: %w", req.URL.Redacted(), ErrInsecure)
	}
	return g.inner.RoundTrip(req)
}

// authFor returns the credentials the first auth file with an entry for
// registry holds, or anonymous ones.
func authFor(files []string, registry string) (authn.Authenticator, error) {
	c, _, ok, err := authfile.Lookup(files, registry)
	if err != nil || !ok {
		return authn.Anonymous, err
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken}), nil
}

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList, MediaTypeDockerManifest,
}, ",")

func (r *registry) url(kind, id string) string {
	return (&url.URL{Scheme: r.scheme, Host: r.host, Path: "/v2/" + r.repo + "/" + kind + "/" + id}).String()
}

// get starts a GET and returns the body, failing on an error status and
// on a stall longer than the timeout, also while the body is read.
func (r *registry) get(ctx context.Context, u, accept string) (*http.Response, io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel(nil)
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, nil, r.explain("GET "+u, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, nil, r.status(u, resp)
	}
	s := &stallReader{body: resp.Body, cancel: cancel, ctx: ctx, timeout: r.timeout, what: u}
	s.timer = time.AfterFunc(r.timeout, func() { cancel(errStalled) })
	return resp, s, nil
}

var errStalled = errors.New("stalled")

// stallReader fails a body that sends nothing for the timeout.
type stallReader struct {
	body    io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	what    string
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if n > 0 {
		s.timer.Reset(s.timeout)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(s.ctx), errStalled) {
		return n, fmt.Errorf("%w: %s sent nothing for %v", ErrTimeout, s.what, s.timeout)
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.timer.Stop()
	err := s.body.Close()
	s.cancel(nil)
	return err
}

// status turns an error response into one line naming the cause.
func (r *registry) status(u string, resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w (404 from %s for %s)", ErrNotFound, r.host, u)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w by %s (%d): log in with `skiff login %s`", ErrRegistry, ErrDenied, r.host, resp.StatusCode, authfile.Key(r.host))
	}
	return fmt.Errorf("%w: %s answered %s for %s", ErrRegistry, r.host, resp.Status, u)
}

// explain maps transport failures to one line naming the cause.
func (r *registry) explain(op string, err error) error {
	var terr *transport.Error
	var nerr net.Error
	var verr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &verr):
		dir := r.caDir
		if dir == "" {
			dir = "certs.d/" + r.host
		}
		// verr alone: go-containerregistry also tells what plain http
		// answered, which is not the way out.
		return fmt.Errorf("%s: registry %s: %w (trust its CA as %s/*.crt, or use --insecure-options=tls)", op, r.host, verr, dir)
	case errors.As(err, &terr):
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %w by %s (%d): log in with `skiff login %s`", ErrRegistry, ErrDenied, r.host, terr.StatusCode, authfile.Key(r.host))
		case http.StatusNotFound:
			return fmt.Errorf("%w (404 from %s)", ErrNotFound, r.host)
		}
		return fmt.Errorf("%w: %s answered %d", ErrRegistry, r.host, terr.StatusCode)
	case errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Errorf("%w: %s: %s did not answer within %v", ErrTimeout, op, r.host, r.timeout)
	}
	return fmt.Errorf("%s: registry %s: %w", op, r.host, err)
}

func (r *registry) root(ctx context.Context) (ocispec.Descriptor, []byte, error) {
	id := r.ref.Tag
	if r.ref.Digest != "" {
		id = r.ref.Digest
	}
	resp, body, err := r.get(ctx, r.url("manifests", id), manifestAccept)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer body.Close()
	if resp.ContentLength > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: manifest of %s is %d bytes, more than %d", ErrTooLarge, r.ref, resp.ContentLength, MaxManifestSize)
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, r.explain("read manifest", err)
	}
	if len(raw) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: manifest of %s is more than %d bytes", ErrTooLarge, r.ref, MaxManifestSize)
	}
	d := digest.FromBytes(raw)
	if r.ref.Digest != "" && d.String() != r.ref.Digest {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: %s answered a manifest hashing to %s", ErrDigestMismatch, r.ref, d)
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	if !isIndex(mt) && !isManifest(mt) {
		mt = "" // generic types (application/json): the document's own field decides
	}
	r.mu.Lock()
	r.docs[d] = raw
	r.mu.Unlock()
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, nil, nil
}

func (r *registry) open(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	r.mu.Lock()
	raw, ok := r.docs[d.Digest]
	r.mu.Unlock()
	if ok {
		return io.NopCloser(strings.NewReader(string(raw))), nil
	}
	kind, accept := "blobs", ""
	if isIndex(d.MediaType) || isManifest(d.MediaType) {
		kind, accept = "manifests", manifestAccept
	}
	_, body, err := r.get(ctx, r.url(kind, d.Digest.String()), accept)
	return body, err
}

func (r *registry) close() error {
	r.client.CloseIdleConnections()
	return nil
}
