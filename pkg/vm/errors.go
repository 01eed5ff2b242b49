package vm

import "errors"

var (
	ErrBadConfig   = errors.New("invalid vm config")
	ErrBadAccel    = errors.New("unknown accelerator (want auto, kvm or tcg)")
	ErrKVMUnusable = errors.New("/dev/kvm is not usable")
	ErrBootTimeout = errors.New("guest did not say hello in time")
	ErrBootStalled = errors.New("guest boot made no progress")
	ErrExited      = errors.New("qemu exited")
	ErrAgent       = errors.New("guest agent error")
)
