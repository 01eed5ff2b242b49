//go:build !amd64

package vm

// HostTSCkHz is unknown off amd64.
func HostTSCkHz() int { return 0 }
