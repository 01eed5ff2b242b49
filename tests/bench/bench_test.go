package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		s    []time.Duration // sorted
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{7 * ms}, 0.9, 7 * ms},
		{"odd median", []time.Duration{1 * ms, 2 * ms, 9 * ms}, 0.5, 2 * ms},
		{"even median interpolates", []time.Duration{1 * ms, 2 * ms, 4 * ms, 9 * ms}, 0.5, 3 * ms},
		{"p10 of 11", []time.Duration{0, 10 * ms, 20 * ms, 30 * ms, 40 * ms, 50 * ms, 60 * ms, 70 * ms, 80 * ms, 90 * ms, 100 * ms}, 0.1, 10 * ms},
		{"max", []time.Duration{1 * ms, 2 * ms}, 1, 2 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.s, tt.q); got != tt.want {
				t.Errorf("quantile(%v, %v) = %v, want %v", tt.s, tt.q, got, tt.want)
			}
		})
	}
}

// A trimmed `strace -f -q -ttt -e trace=execve` log of a skiff run whose
// stage1 exec came from a thread other than the leader.
const straceLog = `100 1000.000000 execve("bin/skiff", ["bin/skiff", "run"], 0x7ff /* 3 vars */) = 0
102 1000.050000 execve("/store/tree/x/rootfs/skiff/run", ["/store/tree/x/rootfs/skiff/run", "--debug", "u"], 0x7ff /* 3 vars */ <unfinished ...>
100 1000.050100 +++ superseded by execve in pid 102 +++
100 1000.050200 <... execve resumed>) = 0
103 1000.051000 execve("/usr/local/sbin/systemd-nspawn", ["systemd-nspawn", "-q"], 0x7ff /* 3 vars */) = -1 ENOENT (No such file or directory)
103 1000.051500 execve("/usr/bin/systemd-nspawn", ["systemd-nspawn", "-q"], 0x7ff /* 3 vars */) = 0
104 1000.100000 +++ exited with 0 +++
105 1000.200000 execve("/bin/true", ["/bin/true"], 0x7ff /* 1 var */) = 0
105 1000.201000 +++ exited with 0 +++
103 1000.290000 +++ exited with 0 +++
100 1000.300000 +++ exited with 0 +++
`

func TestParseStrace(t *testing.T) {
	evs, err := parseStrace(strings.NewReader(straceLog))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.text)
	}
	want := []string{
		"exec bin/skiff bin/skiff, run",
		"exec /store/tree/x/rootfs/skiff/run /store/tree/x/rootfs/skiff/run, --debug, u",
		"exec /usr/bin/systemd-nspawn systemd-nspawn, -q",
		"exec /bin/true /bin/true",
		"exit /bin/true",
		"exit /usr/bin/systemd-nspawn",
		"exit /store/tree/x/rootfs/skiff/run",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := evs[len(evs)-1].at.Sub(evs[0].at); d != 300*time.Millisecond {
		t.Errorf("run took %v, want 300ms", d)
	}

	var b strings.Builder
	printBreakdown(&b, "t", evs, []phase{
		{"stage0", regexp.MustCompile(`^exec .*/skiff/run `)},
		{"never", regexp.MustCompile(`^exec /nothing`)},
		{"to app", regexp.MustCompile(`^exec /bin/true `)},
		{"rest", regexp.MustCompile(`^exit .*/skiff/run$`)},
	})
	for _, want := range []string{"stage0 .* 50.0 ms +\\(at 50.0 ms\\)", "never .*end not seen", "to app .* 150 ms +\\(at 200 ms\\)", "rest .* 100 ms +\\(at 300 ms\\)"} {
		if !regexp.MustCompile(want).MatchString(b.String()) {
			t.Errorf("breakdown lacks /%s/:\n%s", want, b.String())
		}
	}
}

func TestLineStamper(t *testing.T) {
	var l lineStamper
	l.Write([]byte("\x1b[0;1;32mOK\x1b[0m one\r\ntw"))
	l.Write([]byte("o\nthree"))
	if got, want := l.lines(), []string{"out OK one", "out two"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestParseRegistryLog(t *testing.T) {
	const log = `time="2026-12-07T05:12:37Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:35473" http.request.method=GET http.request.uri="/v2/bench/big/blobs/sha256:aa" http.request.useragent=go-containerregistry/v0.22.1 http.response.status=200 http.response.written=536
time="2026-12-07T05:12:37Z" level=info msg="authorized request" http.request.method=GET http.request.uri="/v2/bench/big/blobs/sha256:aa"
time="2026-12-07T05:12:38Z" level=info msg="response completed" http.request.method=HEAD http.request.uri="/v2/bench/big/blobs/sha256:bb" http.response.status=200 http.response.written=0
time="2026-12-07T05:12:39Z" level=info msg="response completed" http.request.method=GET http.request.uri="/v2/bench/big/manifests/1" http.response.status=200 http.response.written=1000
time="2026-12-07T05:12:40Z" level=info msg="response completed" http.request.method=GET http.request.uri="/v2/bench/big/blobs/sha256:cc" http.response.status=200 http.response.written=8878918
`
	got, err := parseRegistryLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(536 + 1000 + 8878918); got.bytes != want {
		t.Errorf("bytes = %d, want %d", got.bytes, want)
	}
	if want := []string{"sha256:aa", "sha256:cc"}; !slices.Equal(got.blobs, want) {
		t.Errorf("blobs = %q, want %q", got.blobs, want)
	}
}
