package main

import (
	"reflect"
	"testing"
)

// TestAuthFiles: the auth file is --authfile, else $REGISTRY_AUTH_FILE,
// else <local-config>/auth.json; Docker's config.json is searched after it.
func TestAuthFiles(t *testing.T) {
	for _, tt := range []struct {
		name, flag, env, dockerConfig, home string
		want                                []string
	}{
		{"default", "", "", "", "/root", []string{"/etc/skiff/auth.json", "/root/.docker/config.json"}},
		{"env", "", "/run/auth.json", "", "/root", []string{"/run/auth.json", "/root/.docker/config.json"}},
		{"flag before env", "/x/a.json", "/run/auth.json", "", "/root", []string{"/x/a.json", "/root/.docker/config.json"}},
		{"DOCKER_CONFIG", "", "", "/dc", "/root", []string{"/etc/skiff/auth.json", "/dc/config.json"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("REGISTRY_AUTH_FILE", tt.env)
			t.Setenv("DOCKER_CONFIG", tt.dockerConfig)
			t.Setenv("HOME", tt.home)
			g := &globals{localConfig: "/etc/skiff", authfile: tt.flag}
			if got := g.authFiles(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("authFiles() = %q, want %q", got, tt.want)
			}
		})
	}
}
