package pod

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

// codec is what every entrypoint's argument type provides.
type codec interface{ Argv() []string }

// roundTrip checks that v.Argv() is want, and that parsing it into a fresh
// value gives v back.
func roundTrip[T codec](t *testing.T, v T, want []string, parse func(*T, []string) error) {
	t.Helper()
	argv := v.Argv()
	if !slices.Equal(argv, want) {
		t.Errorf("Argv() = %q, want %q", argv, want)
	}
	var got T
	if err := parse(&got, argv); err != nil {
		t.Fatalf("Parse(%q): %v", argv, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("Parse(%q) = %+v, want %+v", argv, got, v)
	}
}

func TestRunArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args RunArgs
		argv []string
	}{
		{"uuid only", RunArgs{UUID: "u"}, []string{"u"}},
		{"every flag", RunArgs{Debug: true, Net: "none", Hostname: "h", Interactive: true, UUID: "u"},
			[]string{"--debug", "--hostname=h", "--interactive", "--net=none", "u"}},
		{"net default", RunArgs{Net: "default", UUID: "u"}, []string{"--net=default", "u"}},
		{"mutable (version 3)", RunArgs{Mutable: true, UUID: "u"}, []string{"--mutable", "u"}},
		{"netns (version 2)", RunArgs{NetNS: "/run/skiff/netns/u", UUID: "u"}, []string{"--netns=/run/skiff/netns/u", "u"}},
		{"private users (feature)", RunArgs{PrivateUsers: "268435456:65536", UUID: "u"}, []string{"--private-users=268435456:65536", "u"}},
		{"value with spaces and =", RunArgs{Hostname: "a b=c", UUID: "u"}, []string{"--hostname=a b=c", "u"}},
		{"ipc parent (feature)", RunArgs{IPC: "parent", UUID: "u"}, []string{"--ipc=parent", "u"}},
		{"net wait (feature)", RunArgs{NetNS: "/n", NetWait: 5, UUID: "u"}, []string{"--net-wait=5", "--netns=/n", "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, tt.args, tt.argv, (*RunArgs).Parse) })
	}
}

func TestEnterArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args EnterArgs
		argv []string
	}{
		{"command", EnterArgs{App: "a", UUID: "u", Cmd: []string{"/bin/sh", "-c", "x"}},
			[]string{"--app=a", "u", "--", "/bin/sh", "-c", "x"}},
		{"command with flags and --", EnterArgs{Debug: true, App: "a", UUID: "u", Cmd: []string{"ls", "--debug", "--", "-x"}},
			[]string{"--app=a", "--debug", "u", "--", "ls", "--debug", "--", "-x"}},
		{"no command", EnterArgs{App: "a", UUID: "u"}, []string{"--app=a", "u"}},
		{"debug", EnterArgs{App: "a", MountImage: "/t/rootfs", CapAdd: "CAP_SYS_PTRACE", UUID: "u", Cmd: []string{"sh"}},
			[]string{"--app=a", "--cap-add=CAP_SYS_PTRACE", "--mount-image=/t/rootfs", "u", "--", "sh"}},
		{"tty", EnterArgs{App: "a", TTY: true, UUID: "u", Cmd: []string{"sh"}}, []string{"--app=a", "--tty", "u", "--", "sh"}},
		{"attach", EnterArgs{App: "a", Attach: true, Stdin: true, UUID: "u"}, []string{"--app=a", "--attach", "--stdin", "u"}},
		{"stats", EnterArgs{App: "a", Stats: true, UUID: "u"}, []string{"--app=a", "--stats", "u"}},
		{"port-forward", EnterArgs{PortForward: 8080, UUID: "u"}, []string{"--port-forward=8080", "u"}},
		{"resources", EnterArgs{App: "a", Resources: `{"memoryBytes":67108864}`, UUID: "u"}, []string{"--app=a", `--resources={"memoryBytes":67108864}`, "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, tt.args, tt.argv, (*EnterArgs).Parse) })
	}
}

func TestStopArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args StopArgs
		argv []string
	}{
		{"plain", StopArgs{UUID: "u"}, []string{"u"}},
		{"force", StopArgs{Force: true, UUID: "u"}, []string{"--force", "u"}},
		{"debug force", StopArgs{Debug: true, Force: true, UUID: "u"}, []string{"--debug", "--force", "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, tt.args, tt.argv, (*StopArgs).Parse) })
	}
}

func TestGCArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args GCArgs
		argv []string
	}{
		{"plain", GCArgs{UUID: "u"}, []string{"u"}},
		{"debug", GCArgs{Debug: true, UUID: "u"}, []string{"--debug", "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, tt.args, tt.argv, (*GCArgs).Parse) })
	}
}

// Every entrypoint rejects what docs/stage1-abi.md does not allow with
// ErrUsage; a stage1 exits ExitFailure on it.
func TestArgsParseRejects(t *testing.T) {
	parsers := map[string]func([]string) error{
		EntrypointRun:   func(a []string) error { var v RunArgs; return v.Parse(a) },
		EntrypointEnter: func(a []string) error { var v EnterArgs; return v.Parse(a) },
		EntrypointStop:  func(a []string) error { var v StopArgs; return v.Parse(a) },
		EntrypointGC:    func(a []string) error { var v GCArgs; return v.Parse(a) },
	}
	tests := []struct {
		ep   string
		argv []string
	}{
		{EntrypointRun, []string{"--no-such-flag", "u"}},
		{EntrypointRun, []string{"--net=none"}},
		{EntrypointRun, []string{"u", "extra"}},
		{EntrypointRun, []string{"--interactive=maybe", "u"}},
		{EntrypointRun, []string{"--force", "u"}}, // stop's flag
		{EntrypointRun, []string{""}},
		{EntrypointRun, []string{"--net=host", "--netns=/run/skiff/netns/u", "u"}}, // two networks
		{EntrypointRun, []string{"--ipc=host", "u"}},
		{EntrypointRun, []string{"--net-wait=5", "u"}},               // nothing to wait for
		{EntrypointRun, []string{"--net-wait=1", "--netns=/n", "u"}}, // stdout
		{EntrypointRun, []string{"--net-wait=-1", "--netns=/n", "u"}},
		{EntrypointEnter, []string{"--no-such-flag", "--app=a", "u", "--", "x"}},
		{EntrypointEnter, []string{"u", "--", "x"}}, // no --app
		{EntrypointEnter, []string{"--app=a", "u", "x"}},
		{EntrypointEnter, []string{"--app=a", "u", "--"}},
		{EntrypointEnter, []string{"--app=a"}},
		{EntrypointEnter, []string{"--app=a", "--attach", "u", "--", "x"}}, // attach runs no command
		{EntrypointEnter, []string{"--app=a", "--attach", "--tty", "u"}},
		{EntrypointEnter, []string{"--app=a", "--stats", "u", "--", "x"}}, // stats runs no command
		{EntrypointEnter, []string{"--app=a", "--stats", "--attach", "u"}},
		{EntrypointEnter, []string{"--port-forward=70000", "u"}},
		{EntrypointEnter, []string{"--port-forward=80", "--app=a", "u"}},
		{EntrypointEnter, []string{"--port-forward=80", "u", "--", "x"}},
		{EntrypointEnter, []string{"--port-forward=80", "--stats", "u"}},
		{EntrypointEnter, []string{"--port-forward=-1", "u"}},
		{EntrypointEnter, []string{"--app=a", `--resources={"memoryBytes":1}`, "u", "--", "x"}}, // no command
		{EntrypointEnter, []string{"--app=a", `--resources={"memoryBytes":1}`, "--stats", "u"}},
		{EntrypointEnter, []string{`--resources={"memoryBytes":1}`, "u"}},              // no --app
		{EntrypointEnter, []string{"--app=a", `--resources={"memory":1}`, "u"}},        // unknown field
		{EntrypointEnter, []string{"--app=a", `--resources={"memoryBytes":-1}`, "u"}},  // negative
		{EntrypointEnter, []string{"--app=a", `--resources={"cpuQuota":50000}`, "u"}},  // no period
		{EntrypointEnter, []string{"--app=a", `--resources={"memoryBytes":1}{}`, "u"}}, // two objects
		{EntrypointEnter, []string{"--port-forward=80", `--resources={"memoryBytes":1}`, "u"}},
		{EntrypointEnter, []string{"--app=a", "--stdin", "u", "--", "x"}}, // stdin is attach's
		{EntrypointStop, []string{"--no-such-flag", "u"}},
		{EntrypointStop, []string{"--app=a", "u"}}, // enter's flag
		{EntrypointStop, []string{}},
		{EntrypointStop, []string{"u", "v"}},
		{EntrypointGC, []string{"--no-such-flag", "u"}},
		{EntrypointGC, []string{"--force", "u"}},
		{EntrypointGC, nil},
	}
	for _, tt := range tests {
		if err := parsers[tt.ep](tt.argv); !errors.Is(err, ErrUsage) {
			t.Errorf("%s %q: err = %v, want %v", tt.ep, tt.argv, err, ErrUsage)
		}
	}
}

func TestAppArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args AppArgs
		argv []string
	}{
		{"app", AppArgs{App: "a", UUID: "u"}, []string{"--app=a", "u"}},
		{"debug", AppArgs{Debug: true, App: "a", UUID: "u"}, []string{"--app=a", "--debug", "u"}},
	}
	for _, ep := range AppEntrypoints {
		for _, tt := range tests {
			t.Run(ep+" "+tt.name, func(t *testing.T) {
				roundTrip(t, tt.args, tt.argv, func(a *AppArgs, argv []string) error { return a.Parse(ep, argv) })
			})
		}
	}
}

func TestAppArgsRejects(t *testing.T) {
	for _, argv := range [][]string{
		{"u"},                         // no --app
		{"--app=a"},                   // no uuid
		{"--app=a", "u", "extra"},     // more than the uuid
		{"--app=a", "--no-such", "u"}, // unknown flag
	} {
		var a AppArgs
		if err := a.Parse(EntrypointAppAdd, argv); !errors.Is(err, ErrUsage) {
			t.Errorf("Parse(%q) = %v, want ErrUsage", argv, err)
		}
	}
}

func TestRunArgsMutableInteractive(t *testing.T) {
	var a RunArgs
	if err := a.Parse([]string{"--mutable", "--interactive", "u"}); !errors.Is(err, ErrUsage) {
		t.Errorf("Parse = %v, want ErrUsage", err)
	}
}
