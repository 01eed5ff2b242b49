package appspec

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSeccompProfile checks which profile an app gets: the default one
// without an isolator (made for its capabilities, no no_new_privs), the
// isolator's otherwise, and none of either for appc's "everything" groups.
func TestSeccompProfile(t *testing.T) {
	admin := append(slices.Clone(DefaultCaps), "CAP_SYS_ADMIN")
	slices.Sort(admin)
	tests := []struct {
		name      string
		isolators string
		want      *specs.LinuxSeccomp
		wantNNP   bool
		denies    []string // calls the first rule must refuse
		allows    []string // calls it must not name
		retains   []string // calls a retain set's rule must allow
		refuses   []string // calls a retain set's rule must leave out
	}{
		{name: "default", want: DefaultSeccomp(DefaultCaps),
			denies: []string{"keyctl", "add_key", "request_key", "mount", "ptrace", "bpf", "kexec_load"}},
		{name: "default with CAP_SYS_ADMIN",
			isolators: `[` + isolator("os/linux/capabilities-retain-set", `{"set":["`+joinQ(admin)+`"]}`) + `]`,
			want:      DefaultSeccomp(admin), denies: []string{"keyctl", "ptrace"}, allows: []string{"mount", "setns", "bpf"}},
		{name: "isolator replaces the default",
			isolators: `[` + isolator("os/linux/seccomp-remove-set", `{"set":["mkdir"],"errno":"EACCES"}`) + `]`,
			wantNNP:   true, denies: []string{"mkdir"}, allows: []string{"keyctl"}},
		{name: "retain everything turns it off",
			isolators: `[` + isolator("os/linux/seccomp-retain-set", `{"set":["@appc.io/all"]}`) + `]`,
			want:      &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}, wantNNP: true},
		{name: "remove nothing is the default, as in rkt",
			isolators: `[` + isolator("os/linux/seccomp-remove-set", `{"set":["@appc.io/empty"]}`) + `]`,
			want:      DefaultSeccomp(DefaultCaps)},
		{name: "rkt's blacklist group, with a call of its own",
			isolators: `[` + isolator("os/linux/seccomp-remove-set", `{"set":["@rkt/default-blacklist","mkdir","mount"],"errno":"EXFULL"}`) + `]`,
			wantNNP:   true, denies: []string{"mkdir", "mount", "umount2", "unshare", "keyctl", "ptrace", "reboot"}, allows: []string{"read", "umount", "vm86"}},
		{name: "docker's blacklist group",
			isolators: `[` + isolator("os/linux/seccomp-remove-set", `{"set":["@docker/default-blacklist"]}`) + `]`,
			wantNNP:   true, denies: []string{"mount", "keyctl"}, allows: []string{"read"}},
		{name: "rkt's whitelist group, 32-bit calls left out",
			isolators: `[` + isolator("os/linux/seccomp-retain-set", `{"set":["@rkt/default-whitelist"],"errno":"EXFULL"}`) + `]`,
			wantNNP:   true, retains: []string{"read", "execve", "clone", "openat"}, refuses: []string{"mount", "keyctl", "chown32", "unshare"}},
		{name: "docker's whitelist group",
			isolators: `[` + isolator("os/linux/seccomp-retain-set", `{"set":["@docker/default-whitelist"]}`) + `]`,
			wantNNP:   true, retains: []string{"read"}, refuses: []string{"mount"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest := ""
			if tt.isolators != "" {
				rest = `,"isolators":` + tt.isolators
			}
			pm, ra := pod(t, appJSON("0", "0", rest), "")
			root, err := os.OpenRoot("testdata/rootfs")
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			s, err := Build(pm, ra, &schema.ImageManifest{}, root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sc := s.Linux.Seccomp
			if sc == nil {
				t.Fatal("no seccomp profile")
			}
			if tt.want != nil && !reflect.DeepEqual(sc, tt.want) {
				t.Errorf("profile = %+v, want %+v", sc, tt.want)
			}
			if s.Process.NoNewPrivileges != tt.wantNNP {
				t.Errorf("no_new_privs = %v, want %v", s.Process.NoNewPrivileges, tt.wantNNP)
			}
			var named []string
			if len(sc.Syscalls) > 0 {
				named = sc.Syscalls[0].Names
			}
			for _, c := range tt.denies {
				if !slices.Contains(named, c) || sc.Syscalls[0].Action == specs.ActAllow {
					t.Errorf("%s not refused: %+v", c, sc.Syscalls)
				}
			}
			for _, c := range tt.retains {
				if !slices.Contains(named, c) || sc.Syscalls[0].Action != specs.ActAllow {
					t.Errorf("%s not retained: %+v", c, sc.Syscalls)
				}
			}
			for _, c := range append(tt.allows, tt.refuses...) {
				if slices.Contains(named, c) {
					t.Errorf("%s refused: %v", c, named)
				}
			}
		})
	}
	if _, err := types.NewLinuxSeccompRetainSet("", "@appc.io/all"); err != nil {
		t.Errorf("appc refuses @appc.io/all: %v", err)
	}
}

func joinQ(s []string) string {
	out := ""
	for i, c := range s {
		if i > 0 {
			out += `","`
		}
		out += c
	}
	return out
}
