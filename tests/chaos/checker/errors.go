package checker

import "errors"

// ErrInvalidHistory is returned (wrapped) when a history cannot be checked
// at all: a missing final read, an element written twice by the workload.
var ErrInvalidHistory = errors.New("checker: invalid history")
