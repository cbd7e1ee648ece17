package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

// BenchmarkSend measures one signed delivery of a small order event to a
// local server that answers 204, sequentially and from parallel goroutines.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	s := webhook.NewSender()
	dest := crossdock.Destination{URL: srv.URL + "/hook", Secret: secret(1), Timeout: 10 * time.Second}
	ev := orderEvent()
	ev.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

	send := func(b *testing.B) {
		resp, err := s.Send(context.Background(), dest, ev)
		if err != nil || resp.Verdict != crossdock.Delivered {
			b.Fatalf("Send = %+v, %v", resp, err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			send(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				send(b)
			}
		})
	})
}
