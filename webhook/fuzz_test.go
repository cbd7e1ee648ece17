package webhook_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"", "0", "7", "3600", "-1", "1e3", "18446744073709551616",
		"Thu, 02 Jan 2025 03:05:05 GMT", "Thursday, 02-Jan-25 03:05:05 GMT", "Thu Jan  2 03:05:05 2025", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := webhook.ParseRetryAfter(v, now)
		if d < 0 || d > webhook.MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, out of [0, %v]", v, d, webhook.MaxRetryAfter)
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 3600 && v[0] != '+' {
			if d != time.Duration(n)*time.Second {
				t.Fatalf("ParseRetryAfter(%q) = %v, want %ds", v, d, n)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add("msg_1", "1800000000", "v1,abc", []byte(`{"a":1}`))
	f.Add("", "", "", []byte(nil))
	f.Add("m", "-9223372036854775808", "v1, v1,,, v2", []byte("x"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
		if err := webhook.Verify(secret(1), h, body, 0, now); err == nil {
			// Only the key's own signature of exactly this message verifies.
			sec, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || id == "" {
				t.Fatalf("Verify accepted headers %q", h)
			}
			want, _ := webhook.Sign(secret(1), id, time.Unix(sec, 0), body)
			if !slices.Contains(strings.Fields(sig), want) {
				t.Fatalf("Verify accepted %q, which lacks %q", sig, want)
			}
		}
		if id == "" {
			return
		}
		good, err := webhook.Sign(secret(1)+" "+secret(2), id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		h = http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)}, "Webhook-Signature": {good}}
		if err := webhook.Verify(secret(2), h, body, 0, now); err != nil {
			t.Fatalf("Verify of a fresh signature: %v", err)
		}
		if err := webhook.Verify(secret(3), h, body, 0, now); err == nil {
			t.Fatal("Verify accepted a signature made with other secrets")
		}
	})
}

// FuzzSendHeaders sends events with arbitrary attribute values and one
// arbitrary static header to a real server: a request Send refuses must be
// one ValidateHeaders refuses, and no header may inject another or replace
// an event header; every other one must arrive, each header must decode
// to its value, and the signature must verify.
func FuzzSendHeaders(f *testing.F) {
	rcv := mustReceiver(f, nil)
	s := webhook.NewSender()
	f.Add("evt-1", "/crm", "order/1", "note", []byte(`{}`), "", "")
	f.Add("id with space", "ä\r\nX: y", "100%", "\"quoted\"", []byte{0, 1, 2}, "Authorization", "Bearer x")
	f.Add("\x00\xff", "\t", " ", "\x7f", []byte(nil), "X-Key", " \tä\xff ")
	f.Add("e", "s", "", "", []byte(nil), "ce-id", "forged")
	f.Add("e", "s", "", "", []byte(nil), "X-A", "v\r\nCe-Id: forged")
	f.Add("e", "s", "", "", []byte(nil), "Expect", "100-continue")
	f.Fuzz(func(t *testing.T, id, source, subject, note string, data []byte, hname, hvalue string) {
		ev := &crossdock.Event{
			ID: id, Source: source, SpecVersion: "1.0", Type: "fuzz.event", Subject: subject, Data: data,
			Extensions: map[string]any{"note": note},
		}
		var headers map[string]string
		if hname != "" {
			headers = map[string]string{hname: hvalue}
		}
		valid := webhook.ValidateHeaders(headers) == nil
		key := http.CanonicalHeaderKey(hname)
		if hname != "" && valid && (strings.ContainsAny(hname+hvalue, "\r\n\x00") || strings.HasPrefix(key, "Ce-") ||
			strings.HasPrefix(key, "Webhook-") || key == "Content-Type" || key == "Traceparent") {
			t.Fatalf("ValidateHeaders accepted %q: %q", hname, hvalue)
		}
		resp, err := s.Send(context.Background(), crossdock.Destination{URL: rcv.URL, Secret: secret(1), Headers: headers}, ev)
		if id == "" || !valid {
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("Send without id or with an invalid header = %v, want EINVALID", err)
			}
			return
		}
		if err != nil || resp.Verdict != crossdock.Delivered {
			t.Fatalf("Send = %+v, %v; want delivered", resp, err)
		}
		got := rcv.last(t)
		want := map[string]string{"Ce-Id": id, "Ce-Source": source, "Ce-Note": note, "Webhook-Id": id}
		if subject != "" {
			want["Ce-Subject"] = subject
		}
		for k, v := range want {
			dec, err := url.PathUnescape(got.header.Get(k))
			if err != nil || dec != v {
				t.Fatalf("header %s = %q decodes to %q (%v), want %q", k, got.header.Get(k), dec, err, v)
			}
		}
		if hname != "" {
			// HTTP drops the whitespace around a value.
			if vs := got.header[key]; len(vs) != 1 || vs[0] != strings.Trim(hvalue, " \t") {
				t.Fatalf("header %s arrived as %q, want %q", key, vs, hvalue)
			}
		}
		if err := mustWebhook(t, secret(1)).Verify(got.body, got.header); err != nil {
			t.Fatalf("standard-webhooks Verify: %v", err)
		}
	})
}
