package cri

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
)

// RuntimeName is what Version reports.
const RuntimeName = "skiff"

// Version is the runtime's version, set by stage0.
var Version = "dev"

func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       RuntimeName,
		RuntimeVersion:    Version,
		RuntimeApiVersion: "v1",
	}, nil
}

func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}, RuntimeHandlers: []*runtimeapi.RuntimeHandler{
		{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}},
		{Name: "ns", Features: &runtimeapi.RuntimeHandlerFeatures{}},
		{Name: "kvm", Features: &runtimeapi.RuntimeHandlerFeatures{}},
	}}, nil
}

func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// grpcError gives err the gRPC status code the CRI expects for it.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, errNoRecord), errors.Is(err, pod.ErrNotExist), errors.Is(err, podctl.ErrNoApp),
		errors.Is(err, store.ErrNotFound), errors.Is(err, errNoImage):
		code = codes.NotFound
	case errors.Is(err, errAmbiguous), errors.Is(err, errInvalid), errors.Is(err, pod.ErrAmbiguous):
		code = codes.InvalidArgument
	case errors.Is(err, cni.ErrPortTaken), errors.Is(err, errExists):
		code = codes.AlreadyExists
	case errors.Is(err, pod.ErrState), errors.Is(err, podctl.ErrAppRunning), errors.Is(err, errPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

var (
	errInvalid      = errors.New("invalid request")
	errExists       = errors.New("already exists")
	errPrecondition = errors.New("not in the state needed")
	errNoImage      = errors.New("no such image")
)
