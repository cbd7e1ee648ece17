// Package crossdock is the domain of the crossdock integration hub: events,
// topics, subscriptions, deliveries and dead letters, the service interfaces
// that the adapter packages implement, and the error codes they share.
//
// It imports only the standard library. Each dependency (NATS JetStream,
// SQLite, HTTP, CEL) lives in a package of its own that implements these
// interfaces; cmd/crossdock wires them together.
package crossdock

import (
	"errors"
	"fmt"
)

// Error codes shared by every package. The HTTP layer maps each to a status
// in one table.
const (
	ECONFLICT       = "conflict"
	EINTERNAL       = "internal"
	EINVALID        = "invalid"
	ENOTFOUND       = "not_found"
	EUNAUTHORIZED   = "unauthorized"
	EFORBIDDEN      = "forbidden"
	EUNAVAILABLE    = "unavailable"
	ETOOLARGE       = "too_large"
	EUNSUPPORTED    = "unsupported_media_type"
	ENOTIMPLEMENTED = "not_implemented"
)

// Error is a domain error: a code for machines and a message for people.
// Messages never contain secrets.
type Error struct {
	Code    string
	Message string
}

// Error returns the message.
func (e *Error) Error() string {
	return e.Message
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, and
// a generic message for any other error, so internals do not leak to callers.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
