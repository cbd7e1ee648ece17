package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/crossdock/crossdock"
	"github.com/crossdock/crossdock/webhook"
)

// mustWebhook returns the reference implementation's verifier for secret.
func mustWebhook(tb testing.TB, secret string) *standardwebhooks.Webhook {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return wh
}

func TestSendSignatureVerifiesWithStandardWebhooks(t *testing.T) {
	rcv := mustReceiver(t, nil)
	s := webhook.NewSender()
	ev := orderEvent()

	t.Run("one secret", func(t *testing.T) {
		mustSend(t, s, crossdock.Destination{URL: rcv.URL, Secret: secret(1)}, ev)
		got := rcv.last(t)
		if err := mustWebhook(t, secret(1)).Verify(got.body, got.header); err != nil {
			t.Fatalf("standard-webhooks Verify: %v", err)
		}
		if err := mustWebhook(t, secret(2)).Verify(got.body, got.header); err == nil {
			t.Fatal("standard-webhooks verified with the wrong secret")
		}
		tampered := append([]byte(nil), got.body...)
		tampered[2] ^= 1
		if err := mustWebhook(t, secret(1)).Verify(tampered, got.header); err == nil {
			t.Fatal("standard-webhooks verified a tampered body")
		}
		if err := webhook.Verify(secret(1), got.header, got.body, 0, time.Now()); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("rotation with two secrets", func(t *testing.T) {
		mustSend(t, s, crossdock.Destination{URL: rcv.URL, Secret: secret(1) + " " + secret(2)}, ev)
		got := rcv.last(t)
		if sigs := strings.Fields(got.header.Get("Webhook-Signature")); len(sigs) != 2 {
			t.Fatalf("webhook-signature = %q, want two signatures", got.header.Get("Webhook-Signature"))
		}
		for _, sec := range []string{secret(1), secret(2)} {
			if err := mustWebhook(t, sec).Verify(got.body, got.header); err != nil {
				t.Errorf("standard-webhooks Verify with one of the two secrets: %v", err)
			}
			if err := webhook.Verify(sec, got.header, got.body, 0, time.Now()); err != nil {
				t.Errorf("Verify with one of the two secrets: %v", err)
			}
		}
		if err := mustWebhook(t, secret(3)).Verify(got.body, got.header); err == nil {
			t.Error("standard-webhooks verified with a third secret")
		}
	})
	t.Run("timestamp from Now", func(t *testing.T) {
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		fixed := webhook.NewSender()
		fixed.Now = func() time.Time { return at }
		mustSend(t, fixed, crossdock.Destination{URL: rcv.URL, Secret: secret(1)}, ev)
		got := rcv.last(t)
		if ts := got.header.Get("Webhook-Timestamp"); ts != "1893456000" {
			t.Errorf("webhook-timestamp = %q, want 1893456000", ts)
		}
		if err := mustWebhook(t, secret(1)).VerifyIgnoringTimestamp(got.body, got.header); err != nil {
			t.Errorf("standard-webhooks VerifyIgnoringTimestamp: %v", err)
		}
	})
}

func TestSignMatchesStandardWebhooks(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	for _, body := range []string{"", `{"a":1}`, "binary\x00\xff"} {
		want, err := mustWebhook(t, secret(5)).Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := webhook.Sign(secret(5), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, []byte(body))
		if err != nil || got != want {
			t.Errorf("Sign(%q) = %q, %v; want %q", body, got, err, want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	padded := "whsec_" + base64.StdEncoding.EncodeToString(key)
	got, err := webhook.ParseSecret(padded)
	if err != nil || string(got) != string(key) {
		t.Fatalf("ParseSecret(padded) = %x, %v", got, err)
	}
	got, err = webhook.ParseSecret(strings.TrimRight(padded, "="))
	if err != nil || string(got) != string(key) {
		t.Fatalf("ParseSecret(unpadded) = %x, %v", got, err)
	}

	tests := []struct {
		name, secret, msg string
	}{
		{"empty", "", "empty"},
		{"no prefix", base64.StdEncoding.EncodeToString(key), "whsec_"},
		{"wrong prefix", "whsk_" + base64.StdEncoding.EncodeToString(key), "whsec_"},
		{"not base64", "whsec_sup3r$ecret!sup3r$ecret!sup3r$ecret!", "base64"},
		{"too short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("s3cr3tkey")), "9 bytes"},
		{"too long", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), "65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.ParseSecret(tt.secret)
			if crossdock.ErrorCode(err) != crossdock.EINVALID {
				t.Fatalf("ParseSecret error = %v, want EINVALID", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q does not name the problem (%q)", msg, tt.msg)
			}
			if body := strings.TrimPrefix(tt.secret, "whsec_"); body != "" && strings.Contains(msg, body) {
				t.Errorf("error %q repeats the secret", msg)
			}
			for _, part := range []string{"sup3r", "s3cr3t", "czNjcjN0"} {
				if strings.Contains(msg, part) {
					t.Errorf("error %q repeats part of the secret", msg)
				}
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"x":1}`)
	header := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	sign := func(sec string, ts time.Time) string {
		s, err := webhook.Sign(sec, "m1", ts, body)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		code string
	}{
		{"valid", header("m1", now, sign(secret(1), now)), body, ""},
		{"valid among others", header("m1", now, "v1,bm9wZQ== v2,xyz "+sign(secret(1), now)), body, ""},
		{"within tolerance", header("m1", now.Add(-4*time.Minute), sign(secret(1), now.Add(-4*time.Minute))), body, ""},
		{"too old", header("m1", now.Add(-6*time.Minute), sign(secret(1), now.Add(-6*time.Minute))), body, crossdock.EUNAUTHORIZED},
		{"in the future", header("m1", now.Add(6*time.Minute), sign(secret(1), now.Add(6*time.Minute))), body, crossdock.EUNAUTHORIZED},
		{"wrong secret", header("m1", now, sign(secret(2), now)), body, crossdock.EUNAUTHORIZED},
		{"other id", header("m2", now, sign(secret(1), now)), body, crossdock.EUNAUTHORIZED},
		{"other body", header("m1", now, sign(secret(1), now)), []byte(`{"x":2}`), crossdock.EUNAUTHORIZED},
		{"unknown version only", header("m1", now, strings.Replace(sign(secret(1), now), "v1,", "v1a,", 1)), body, crossdock.EUNAUTHORIZED},
		{"missing signature", header("m1", now, ""), body, crossdock.EUNAUTHORIZED},
		{"missing id", header("", now, sign(secret(1), now)), body, crossdock.EUNAUTHORIZED},
		{"missing timestamp", http.Header{"Webhook-Id": {"m1"}, "Webhook-Signature": {sign(secret(1), now)}}, body, crossdock.EUNAUTHORIZED},
		{"malformed timestamp", http.Header{"Webhook-Id": {"m1"}, "Webhook-Timestamp": {"soon"}, "Webhook-Signature": {sign(secret(1), now)}}, body, crossdock.EUNAUTHORIZED},
		{"absurd timestamp", http.Header{"Webhook-Id": {"m1"}, "Webhook-Timestamp": {"9223372036854775807"}, "Webhook-Signature": {"v1,x"}}, body, crossdock.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(secret(1), tt.h, tt.body, 0, now)
			if code := crossdock.ErrorCode(err); code != tt.code {
				t.Errorf("Verify = %v (code %q), want code %q", err, code, tt.code)
			}
		})
	}
	if err := webhook.Verify("whsec_", header("m1", now, sign(secret(1), now)), body, 0, now); crossdock.ErrorCode(err) != crossdock.EINVALID {
		t.Errorf("Verify with a bad secret = %v, want EINVALID", err)
	}
	if err := webhook.Verify(secret(1), header("m1", now.Add(-time.Hour), sign(secret(1), now.Add(-time.Hour))), body, 2*time.Hour, now); err != nil {
		t.Errorf("Verify with a 2h tolerance = %v", err)
	}
}
