package imageref

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want Ref
		str  string // canonical form; "" means none checked
	}{
		{"docker://busybox", Ref{Transport: Docker, Registry: "docker.io", Repository: "library/busybox", Tag: "latest"}, "docker://docker.io/library/busybox:latest"},
		{"docker://busybox:1.36", Ref{Transport: Docker, Registry: "docker.io", Repository: "library/busybox", Tag: "1.36"}, "docker://docker.io/library/busybox:1.36"},
		{"docker://docker.io/busybox", Ref{Transport: Docker, Registry: "docker.io", Repository: "library/busybox", Tag: "latest"}, ""},
		{"docker://index.docker.io/library/busybox", Ref{Transport: Docker, Registry: "docker.io", Repository: "library/busybox", Tag: "latest"}, ""},
		{"docker://user/app", Ref{Transport: Docker, Registry: "docker.io", Repository: "user/app", Tag: "latest"}, "docker://docker.io/user/app:latest"},
		{"docker://quay.io/coreos/etcd:v3.5.0", Ref{Transport: Docker, Registry: "quay.io", Repository: "coreos/etcd", Tag: "v3.5.0"}, ""},
		{"docker://127.0.0.1:5000/img", Ref{Transport: Docker, Registry: "127.0.0.1:5000", Repository: "img", Tag: "latest"}, "docker://127.0.0.1:5000/img:latest"},
		{"docker://localhost/a/b/c:t", Ref{Transport: Docker, Registry: "localhost", Repository: "a/b/c", Tag: "t"}, ""},
		{"docker://[::1]:5000/img", Ref{Transport: Docker, Registry: "[::1]:5000", Repository: "img", Tag: "latest"}, ""},
		{"docker://Registry/img", Ref{Transport: Docker, Registry: "Registry", Repository: "img", Tag: "latest"}, ""},
		{"docker://busybox@" + dgst, Ref{Transport: Docker, Registry: "docker.io", Repository: "library/busybox", Digest: dgst}, "docker://docker.io/library/busybox@" + dgst},
		{"docker://r.io:443/a:t@" + dgst, Ref{Transport: Docker, Registry: "r.io:443", Repository: "a", Tag: "t", Digest: dgst}, ""},
		{"docker://a.b-c__d", Ref{Transport: Docker, Registry: "docker.io", Repository: "library/a.b-c__d", Tag: "latest"}, ""},
		{"docker://a.b/c-d__e", Ref{Transport: Docker, Registry: "a.b", Repository: "c-d__e", Tag: "latest"}, ""},
		{"oci:/srv/layout", Ref{Transport: OCI, Path: "/srv/layout"}, "oci:/srv/layout"},
		{"oci:/srv/layout:v1", Ref{Transport: OCI, Path: "/srv/layout", Tag: "v1"}, "oci:/srv/layout:v1"},
		{"oci:rel/dir:a/b+c", Ref{Transport: OCI, Path: "rel/dir", Tag: "a/b+c"}, ""},
		{"oci-archive:img.tar", Ref{Transport: OCIArchive, Path: "img.tar"}, "oci-archive:img.tar"},
		{"oci-archive:/x/img.tar:latest", Ref{Transport: OCIArchive, Path: "/x/img.tar", Tag: "latest"}, ""},
		{"docker-archive:/tmp/save.tar", Ref{Transport: DockerArchive, Path: "/tmp/save.tar"}, "docker-archive:/tmp/save.tar"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
			if tt.str != "" && got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Errorf("Parse(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		in      string
		want    error
		message string // a part of the error text naming the cause
	}{
		{"busybox", ErrNotOCI, ""},
		{"example.com/app:1.0", ErrNotOCI, ""}, // an appc name with a label-ish suffix
		{"coreos.com/etcd", ErrNotOCI, ""},
		{"/tmp/x.aci", ErrNotOCI, ""},
		{"https://example.com/x.aci", ErrNotOCI, ""},
		{"", ErrNotOCI, ""},
		{"docker:busybox", ErrInvalid, "docker://"},
		{"docker://", ErrInvalid, "empty repository"},
		{"docker://:tag", ErrInvalid, "empty repository"},
		{"docker://Busybox", ErrInvalid, "lower case"},
		{"docker://docker.io/User/app", ErrInvalid, "lower case"},
		{"docker://a/../b", ErrInvalid, `component ".."`},
		{"docker://a//b", ErrInvalid, `component ""`},
		{"docker://a/b/", ErrInvalid, `component ""`},
		{"docker://-a", ErrInvalid, "component"},
		{"docker://a_-b", ErrInvalid, "component"},
		{"docker://busybox:", ErrInvalid, "tag"},
		{"docker://busybox:-x", ErrInvalid, "tag"},
		{"docker://busybox:" + strings.Repeat("t", 129), ErrInvalid, "tag"},
		{"docker://busybox@sha256:abc", ErrInvalid, "digest"},
		{"docker://busybox@sha512:" + strings.Repeat("a", 128), ErrInvalid, "digest"},
		{"docker://busybox@sha256:" + strings.Repeat("A", 64), ErrInvalid, "digest"},
		{"docker://bad_host.io:x/img", ErrInvalid, "registry"},
		{"docker://ho$t.io/img", ErrInvalid, "registry"},
		{"docker://-h.io/img", ErrInvalid, "registry"},
		{"docker://r.io:123456/img", ErrInvalid, "registry"},
		{"docker://" + strings.Repeat("a", 256), ErrInvalid, "longer than 255"},
		{"docker://busy\x00box", ErrInvalid, "control character"},
		{"docker://busybox\n", ErrInvalid, "control character"},
		{"oci:", ErrInvalid, "empty path"},
		{"oci::tag", ErrInvalid, "empty path"},
		{"oci:/x:bad tag", ErrInvalid, "reference name"},
		{"oci:/x:../up", ErrInvalid, "reference name"},
		{"oci-archive:/x:" + strings.Repeat("t", 129), ErrInvalid, "reference name"},
		{"oci-archive:" + strings.Repeat("p", 4097), ErrInvalid, "path longer"},
		{"docker-archive:", ErrInvalid, "empty path"},
		{"oci:/x\x00y", ErrInvalid, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.1:5000/app", true},
		{"registry.example.com/team/app", true},
		{"docker.io/library/busybox", true},
		{"", false},
		{"127.0.0.1:5000/", false},
		{"127.0.0.1:5000/../x", false},
		{"r.example/a,b", false},
		{"r.example//a", false},
		{"r.example/App", false},
		{"docker://r.example/a", false},
	} {
		if err := CheckPrefix(c.s); (err == nil) != c.ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok %v", c.s, err, c.ok)
		}
	}
}
