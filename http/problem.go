package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/crossdock/crossdock"
)

// ProblemTypeBase prefixes every problem type URI; the domain error code
// follows it, as in https://crossdock.dev/problems/not_found.
const ProblemTypeBase = "https://crossdock.dev/problems/"

// statusOf is the one table from domain error codes to HTTP statuses. A code
// that is not here (EINTERNAL or an unknown one) answers 500.
var statusOf = map[string]int{
	crossdock.EINVALID:        http.StatusBadRequest,
	crossdock.EUNAUTHORIZED:   http.StatusUnauthorized,
	crossdock.EFORBIDDEN:      http.StatusForbidden,
	crossdock.ENOTFOUND:       http.StatusNotFound,
	crossdock.ECONFLICT:       http.StatusConflict,
	crossdock.ETOOLARGE:       http.StatusRequestEntityTooLarge,
	crossdock.EUNSUPPORTED:    http.StatusUnsupportedMediaType,
	crossdock.ENOTIMPLEMENTED: http.StatusNotImplemented,
	crossdock.EUNAVAILABLE:    http.StatusServiceUnavailable,
}

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"`
}

// ProblemFor returns the problem that describes err, and whether err is an
// internal error whose real cause must be logged rather than shown: its
// detail is then a generic message.
func ProblemFor(err error) (p Problem, internal bool) {
	code := crossdock.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		return Problem{
			Type:   ProblemTypeBase + crossdock.EINTERNAL,
			Title:  http.StatusText(http.StatusInternalServerError),
			Status: http.StatusInternalServerError,
			Detail: "an internal error occurred; it has been logged",
		}, true
	}
	return Problem{
		Type:   ProblemTypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: crossdock.ErrorMessage(err),
	}, false
}

// writeError answers err as a problem. An internal error is logged here,
// once, with its real cause; a client that went away is only noted at debug.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p, internal := ProblemFor(err)
	if internal {
		level := slog.LevelError
		if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
			level = slog.LevelDebug
		}
		s.logger().Log(r.Context(), level, "request failed",
			"method", r.Method, "path", r.URL.Path, "error", err)
	}
	p.Instance = r.URL.Path
	writeProblem(w, p)
}

// writeProblem writes p as application/problem+json. A 503 tells the caller
// to retry after a second.
func writeProblem(w http.ResponseWriter, p Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	b := make([]byte, 0, 128+len(p.Detail)+len(p.Instance))
	b = append(b, `{"type":`...)
	b = appendJSONString(b, p.Type)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, p.Title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(p.Status), 10)
	b = append(b, `,"detail":`...)
	b = appendJSONString(b, p.Detail)
	if p.Instance != "" {
		b = append(b, `,"instance":`...)
		b = appendJSONString(b, p.Instance)
	}
	b = append(b, "}\n"...)
	w.WriteHeader(p.Status)
	_, _ = w.Write(b) // the client may be gone; nothing left to tell it
}
