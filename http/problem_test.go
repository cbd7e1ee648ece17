package http_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/crossdock/crossdock"
	cdhttp "github.com/crossdock/crossdock/http"
)

func TestProblemFor(t *testing.T) {
	tests := []struct {
		err      error
		status   int
		typ      string
		detail   string
		internal bool
	}{
		{crossdock.Errorf(crossdock.ENOTFOUND, "topic x not found"), 404, "not_found", "topic x not found", false},
		{crossdock.Errorf(crossdock.EINVALID, "bad"), 400, "invalid", "bad", false},
		{crossdock.Errorf(crossdock.ETOOLARGE, "big"), 413, "too_large", "big", false},
		{crossdock.Errorf(crossdock.EUNSUPPORTED, "media"), 415, "unsupported_media_type", "media", false},
		{crossdock.Errorf(crossdock.EUNAVAILABLE, "down"), 503, "unavailable", "down", false},
		{crossdock.Errorf(crossdock.ECONFLICT, "exists"), 409, "conflict", "exists", false},
		{crossdock.Errorf(crossdock.EUNAUTHORIZED, "who"), 401, "unauthorized", "who", false},
		{crossdock.Errorf(crossdock.EFORBIDDEN, "no"), 403, "forbidden", "no", false},
		{crossdock.Errorf(crossdock.ENOTIMPLEMENTED, "later"), 501, "not_implemented", "later", false},
		{fmt.Errorf("publish to a.b: %w", crossdock.Errorf(crossdock.EUNAVAILABLE, "no ack")), 503, "unavailable", "no ack", false},
		{crossdock.Errorf(crossdock.EINTERNAL, "secret path /var/x"), 500, "internal", "an internal error occurred; it has been logged", true},
		{errors.New("dial tcp 10.0.0.1: refused"), 500, "internal", "an internal error occurred; it has been logged", true},
		{crossdock.Errorf("made_up", "x"), 500, "internal", "an internal error occurred; it has been logged", true},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			p, internal := cdhttp.ProblemFor(tt.err)
			want := cdhttp.Problem{
				Type:   cdhttp.ProblemTypeBase + tt.typ,
				Title:  statusText(tt.status),
				Status: tt.status,
				Detail: tt.detail,
			}
			if p != want || internal != tt.internal {
				t.Errorf("ProblemFor = %+v, %v; want %+v, %v", p, internal, want, tt.internal)
			}
		})
	}
}

func statusText(code int) string { return http.StatusText(code) }
