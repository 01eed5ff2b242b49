package prepare

import "errors"

// ErrLayers means an app or the stage1 came without the layers its caller
// resolved and checked (see App.Layers).
var ErrLayers = errors.New("no checked layers given")
